"""`qa bench ...`: speed benchmarks, each beside its floor measured in the same run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qa.cli.exits import exit_code, fail
from qa.config import get_settings
from qa.errors import QAError

if TYPE_CHECKING:
    from qa.eval.sets import EvalQuestion

app = typer.Typer(
    no_args_is_help=True,
    help="Speed benchmarks, each beside its floor (the bare model) measured in the same run.",
)
BenchOut = Annotated[Path, typer.Option("--out", help="Folder for the JSON (and PNG) results.")]
BENCH_SET = Path("eval/sets/squad-dev")  # the set whose corpus and questions the benches use
SetIndexOpt = Annotated[
    Path | None, typer.Option("--index", help="Index folder [default: index/eval-<set>]")
]
AskedSetOpt = Annotated[Path, typer.Option("--set", help="Eval set whose questions are asked.")]


def _bench_corpus() -> list[Path]:
    """The benches' default corpus: the bench set's, read in place (MissingData when absent)."""
    from qa.eval import sets

    eval_set = sets.load_set(BENCH_SET)
    eval_set.require(eval_set.corpus)
    return list(eval_set.corpus)


@app.command("index")
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
        raise fail(exc, exit_code(exc)) from exc
    path = report.write_json(result, out / "index.json")
    typer.echo(bench_index.format_index(result))
    typer.echo(f"\nwrote {path}")


@app.command("ocr")
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
        raise fail(exc, exit_code(exc)) from exc
    path = report.write_json(result, out / "ocr.json")
    typer.echo(bench_ocr.format_ocr(result))
    typer.echo(f"\nwrote {path}")


@app.command("ray")
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
        raise fail(f"--actors takes whole numbers separated by commas, not {actors!r}", 2) from exc
    except QAError as exc:
        raise fail(exc, exit_code(exc)) from exc
    path = report.write_json(result, out / "ray.json")
    typer.echo(bench_ray.format_ray(result))
    typer.echo(f"\nwrote {path}")


@app.command("ask")
def bench_ask(
    index: SetIndexOpt = None,
    set_dir: AskedSetOpt = BENCH_SET,
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
        raise fail(exc, exit_code(exc)) from exc
    path = report.write_json(result, out / "ask.json")
    plot = bench_ask.plot_ask(result, out / "ask.png")
    typer.echo(bench_ask.format_ask(result))
    typer.echo(f"\nwrote {path}, {plot}")


@app.command("scale")
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
        raise fail(f"--stores takes {', '.join(bench_scale.STORES)}, not {stores!r}", 2)

    try:
        counts = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise fail(f"--sizes takes whole numbers separated by commas, not {sizes!r}", 2) from exc
    if not counts or min(counts) < 1:
        raise fail("--sizes needs at least one positive number of chunks", 2)
    try:
        most = (
            {}
            if limits == "none"
            else {
                k.strip(): int(v) for k, v in (p.split("=") for p in limits.split(",") if p.strip())
            }
        )
    except ValueError as exc:
        raise fail(f"--limits takes STORE=CHUNKS separated by commas, not {limits!r}", 2) from exc
    if set(most) - set(bench_scale.STORES):
        raise fail(f"--limits names stores among {', '.join(bench_scale.STORES)}", 2)
    try:
        result = bench_scale.bench_scale(
            counts, set_dir, queries, say=timing.stderr_say, stores=kinds, limits=most
        )
    except QAError as exc:
        raise fail(exc, exit_code(exc)) from exc
    path = report.write_json(result, out / "scale.json")
    plot = bench_scale.plot_scale(result, out / "scale.png")
    typer.echo(bench_scale.format_scale(result))
    typer.echo(f"\nwrote {path}, {plot}")


@app.command("ann")
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
        raise fail(f"--indexes takes hnsw and/or ivf, not {indexes!r}", 2)
    try:
        result = bench_ann.bench_ann(set_dir, size, probes, timing.stderr_say, configs)
    except QAError as exc:
        raise fail(exc, exit_code(exc)) from exc
    path = report.write_json(result, out / f"ann-{size}.json")
    typer.echo(bench_ann.format_ann(result))
    typer.echo(f"\nwrote {path}")


@app.command("serve")
def bench_serve(
    url: Annotated[
        str | None, typer.Option(help="A running service [default: start one on a free port]")
    ] = None,
    index: SetIndexOpt = None,
    set_dir: AskedSetOpt = BENCH_SET,
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
            api_key=get_settings().serving.api_key,
            baseline=baseline,
        )
    except (QAError, RuntimeError) as exc:
        raise fail(exc, exit_code(exc)) from exc
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
        raise fail(f"unknown runtime {unknown[0]!r}; give some of {', '.join(BACKENDS[1:])}", 2)
    return names


def _set_questions_and_index(set_dir: Path, index: Path | None) -> tuple[list[EvalQuestion], Path]:
    """A set's questions, and its index: the one given, or its own, built (incrementally)."""
    from qa.encoders.embedding import is_terminal
    from qa.eval import sets

    eval_set = sets.load_set(set_dir)
    questions = sets.load_questions(eval_set)
    if index is None:
        index = sets.default_index_dir(set_dir)
        sets.build_index(eval_set, index, progress=is_terminal())
    return questions, index
