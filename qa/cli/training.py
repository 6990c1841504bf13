"""`qa train reader` and `qa train calibrator`: the models qa ships, retrained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from qa.cli.exits import fail
from qa.errors import QAError

app = typer.Typer(help="Train the models qa ships (the reader).", no_args_is_help=True)


@app.command("reader")
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
        raise fail(exc, 2) from exc
    shown = {k: v for k, v in figures.items() if not k.endswith("curve")}
    typer.echo(json.dumps(shown, indent=1))
    typer.echo(f"saved to {out} (curve: {out / 'training.png'})")


@app.command("calibrator")
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
        raise fail(exc, 2) from exc
    for name, f in figures["out_of_fold"].items():
        typer.echo(
            f"{name}: {f['answers']} answers, {f['right']:.3f} right, out-of-fold AUC "
            f"{f['auc'] or float('nan'):.3f}, ECE {f['ece']:.3f}"
        )
    typer.echo(json.dumps(figures["tiers_out_of_fold"], indent=1))
    typer.echo(f"signals: {figures['contributions']}")
    typer.echo(f"saved to {out} (plot: {out / 'calibration.png'})")
