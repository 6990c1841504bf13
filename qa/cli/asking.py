"""`qa ask` and `qa chat`: answers with numbered citations, in the terminal."""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Annotated

import typer

from qa.cli.exits import fail
from qa.cli.options import (
    CollectionOpt,
    IndexOpt,
    MilvusUriOpt,
    ModeOpt,
    StoreOpt,
    open_engine,
    use_store,
)
from qa.errors import QAError

if TYPE_CHECKING:
    from qa.engine import Engine
    from qa.records import Answer, Citation, Message, Passage


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

    use_store(store, milvus_uri, collection)
    try:
        with closing(open_engine(index)) as engine:
            result = _answer(engine, question, top_k, mode, stream and not as_json)
    except QAError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(AskResponse.of(result).model_dump_json(indent=2))
    else:
        if result.query != question.strip():
            typer.echo(f"(searched: {result.query})")
        _print_answer(result)


def _answer(
    engine: Engine, question: str, top_k: int | None, mode: str | None, stream: bool
) -> Answer:
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


def chat(index: IndexOpt = None, mode: ModeOpt = None) -> None:
    """Chat in the terminal; follow-up questions use the conversation so far."""
    with closing(open_engine(index)) as engine:
        _chat(engine, mode)


def _chat(engine: Engine, mode: str | None) -> None:
    history: list[Message] = []
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


def _print_answer(result: Answer, top_k_shown: int = 3) -> None:
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


def _where(item: Citation | Passage) -> str:
    """ "p. 3 · Results, " for a citation or passage with a location, else ""."""
    from qa.sources.locations import label

    where = label(item.page, item.section, item.ocr)
    return f"{where}, " if where else ""
