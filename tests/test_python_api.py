"""The Python API: `from qa import ...` gives the engine and the records, and the README's
example runs as written."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

import qa
from qa import records
from tests.conftest import ROOT
from tests.ui_support import child_env

FACT = "The Glass Tower in Norrvik has 77 floors and was finished in 2011.\n"


def readme_example() -> str:
    """The first Python block of the README's **Python.** paragraph."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Python.**") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(tmp_path):
    (tmp_path / "my-docs").mkdir()
    (tmp_path / "my-docs" / "tower.txt").write_text(FACT)
    check = (
        "\nassert isinstance(answer, qa.Answer) and answer.citations\n"
        "for c in answer.citations:\n"
        "    assert isinstance(c, qa.Citation)\n"
        "    assert engine.document(c.doc_id).text[c.start : c.end] == c.quote\n"
        "status = engine.status()\n"
        "assert isinstance(status, qa.IndexStatus), status\n"
        "assert (status.documents, status.chunks, status.dim) == (1, 1, 384), status\n"
        'assert status.embedding.backend == embedder.runtime()["backend"], status\n'
    )
    script = "import qa\n" + readme_example() + check
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "added 1" in done.stdout
    assert "77 floors" in done.stdout
    assert "[1] tower.txt 0-66: The Glass Tower in Norrvik has 77 floors" in done.stdout


@pytest.mark.parametrize(
    "record",
    [
        c
        for c in vars(records).values()
        if dataclasses.is_dataclass(c) and c.__module__ == records.__name__
    ],
    ids=lambda c: c.__name__,
)
def test_the_records_are_frozen(record):
    """Every record the pipeline passes along is frozen: a step makes a changed copy
    (`dataclasses.replace`), never changes what an earlier step returned."""
    assert record.__dataclass_params__.frozen, f"{record.__name__} is not frozen"


def test_a_frozen_answer_refuses_a_change_and_replace_copies_it():
    answer = qa.Answer(
        answer="77 floors.",
        short_answer=None,
        abstained=False,
        query="q",
        citations=[],
        passages=[],
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.notes = ["changed"]
    changed = dataclasses.replace(answer, notes=["checked"], timings_ms={"total": 1.0})
    assert (changed.notes, answer.notes, answer.timings_ms) == (["checked"], [], {})


def test_the_exported_names():
    assert set(qa.__all__) == set(qa._EXPORTS) | {"__version__"}
    for name in qa._EXPORTS:
        assert getattr(qa, name).__name__ == name
    from qa import Engine, QAError

    assert Engine.ask and issubclass(qa.InvalidInput, QAError)
