"""The `qa` command, one module per command group: documents (index), asking (ask, chat),
evaluation (eval), service (serve, mcp, up), bench and training (train); each command imports
its heavy modules when it runs, so `qa --help` stays fast."""

from __future__ import annotations

import typer

from qa.cli import asking, bench, documents, evaluation, service, training
from qa.cli.exits import check_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="qa: answers with sources. Offline question answering over your own documents.",
)
app.callback()(check_settings)
app.command()(documents.index)
app.command()(asking.ask)
app.command()(asking.chat)
app.command("eval")(evaluation.evaluate)
app.command()(service.serve)
app.command()(service.mcp)
app.command()(service.up)
app.add_typer(bench.app, name="bench")
app.add_typer(training.app, name="train")


def main() -> None:  # pragma: no cover - console entry point
    app()
