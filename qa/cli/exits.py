"""How a command ends on an error: one red line on stderr and an exit status."""

from __future__ import annotations

import typer

from qa.config import get_settings
from qa.errors import QAError


def fail(exc: Exception | str, code: int = 1) -> typer.Exit:
    """Print `error: ...` in red on stderr; returns the exit (status `code`) to raise."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def exit_code(exc: Exception) -> int:
    """Exit status: 2 when data the command reads in place is missing, else 1."""
    from qa.errors import MissingData

    return 2 if isinstance(exc, MissingData) else 1


def check_settings() -> None:
    """Read the QA_ settings before any command, so a bad one is one clear line, not a trace."""
    try:
        get_settings()
    except QAError as exc:
        raise fail(exc, 2) from exc
