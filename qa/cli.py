"""The `qa` command: index, ask, chat, serve, up, eval and bench, over the same core functions."""

from __future__ import annotations

import sys
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

IndexOpt = Annotated[
    Path | None,
    typer.Option("--index", help="Index folder [default: QA_INDEX_DIR or index/default]"),
]


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
) -> None:
    """Index files and folders (.txt .md .html .pdf .docx); re-runs only embed what changed."""
    from qa import indexing
    from qa.chunking import ChunkingParams
    from qa.embedding import default_embedder, is_terminal

    index_dir = _index_dir(index)
    if status:
        _print_status(index_dir)
        return
    if not paths:
        raise _fail("give at least one file or folder to index, or --status", 2)
    settings = get_settings()
    try:
        report = indexing.index_paths(
            paths,
            index_dir,
            default_embedder(),
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
    typer.echo(f"{index_dir} ({report.version}): {report.summary()}")
    if not report.ok:
        raise typer.Exit(1)


def _print_status(index_dir: Path) -> None:
    from qa import store

    try:
        snap = store.open_snapshot(index_dir)
    except QAError as exc:
        raise _fail(exc) from exc
    m = snap.manifest
    size = store.disk_size(snap.path)
    typer.echo(f"index     {index_dir} (version {snap.version}, format {m['format']})")
    typer.echo(f"model     {m['model']} ({m['dim']} dimensions)")
    typer.echo(f"chunking  {m['chunking']}")
    typer.echo(f"documents {len(m['documents'])}")
    typer.echo(f"chunks    {m['n_chunks']}")
    typer.echo(f"size      {size / 1e6:.1f} MB on disk")
    typer.echo(f"created   {m['created_at']}")
    for doc_id, meta in sorted(m["documents"].items()):
        date = meta.get("date") or "-"
        typer.echo(f"  {doc_id}  [{date}]  {meta['n_chunks']} chunks  {meta['title']}")
    snap.close()


def _engine(index: Path | None):
    from qa.engine import Engine

    return Engine(_index_dir(index))


def _print_answer(result, top_k_shown: int = 3) -> None:
    style = typer.colors.YELLOW if result.abstained else typer.colors.GREEN
    typer.secho(result.answer, fg=style, bold=True)
    if result.short_answer:
        typer.echo(f"Short answer: {result.short_answer}")
    for c in result.citations:
        date = f", {c.date}" if c.date else ""
        typer.echo(f"  [{c.n}] {c.title}{date} ({c.doc_id}, chars {c.start}-{c.end})")
        typer.echo(f"      “{c.quote}”")
    if result.abstained and result.passages:
        typer.echo("Related reading:")
        for p in result.passages[:top_k_shown]:
            snippet = p.text[:160].replace("\n", " ")
            typer.echo(f"  - {p.title} ({p.doc_id}, chars {p.start}-{p.end}): {snippet}…")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    index: IndexOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Passages to retrieve.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the HTTP /ask body.")] = False,
) -> None:
    """Answer one question from the index, with numbered citations."""
    from qa.schemas import AskResponse

    try:
        result = _engine(index).ask(question, top_k=top_k)
    except QAError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(AskResponse.of(result).model_dump_json(indent=2))
    else:
        if result.query != question.strip():
            typer.echo(f"(searched: {result.query})")
        _print_answer(result)


@app.command()
def chat(index: IndexOpt = None) -> None:
    """Chat in the terminal; follow-up questions use the conversation so far."""
    engine = _engine(index)
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
            result = engine.ask(question, history=history)
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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
