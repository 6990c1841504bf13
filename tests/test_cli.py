"""The `qa` command's tree: every command and group answers --help, and `qa --help` (which
every command's start pays) loads no model, index or web framework: commands import those when
they run."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from qa.cli import app
from tests.conftest import ROOT

COMMANDS = {
    (): ["index", "ask", "chat", "eval", "serve", "mcp", "up", "bench", "train"],
    ("bench",): ["index", "ocr", "ray", "ask", "scale", "ann", "serve"],
    ("train",): ["reader", "calibrator"],
}


@pytest.mark.parametrize("group", COMMANDS, ids=lambda g: " ".join(("qa", *g)))
def test_every_command_of_a_group_is_listed_and_answers_help(group):
    command = typer.main.get_command(app)
    for name in group:
        command = command.commands[name]
    assert list(command.commands) == COMMANDS[group]
    for name in ["", *COMMANDS[group]]:
        args = [*group, name] if name else list(group)
        shown = CliRunner().invoke(app, [*args, "--help"])
        assert shown.exit_code == 0, shown.output
        assert f"Usage: root {' '.join(args)}".rstrip() + " [OPTIONS]" in shown.output


def test_qa_help_loads_no_model_index_or_web_framework():
    heavy = ["torch", "transformers", "onnxruntime", "faiss", "numpy", "fastapi", "uvicorn"]
    heavy += ["streamlit", "pymilvus", "ray", "qa.engine", "qa.encoders", "qa.store", "qa.eval"]
    code = (
        "import sys, runpy; sys.argv = ['qa', '--help']\n"
        "try:\n    runpy.run_module('qa.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "Usage:" in done.stdout and "LOADED []" in done.stdout, done.stdout + done.stderr
