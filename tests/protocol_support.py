"""What the OpenAI and MCP tests share: a real `qa serve` over the tests' corpus, its questions,
and the /ask answer each protocol must reproduce."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import CORPUS_QUESTIONS as QUESTIONS  # noqa: F401  (the tests import it)
from tests.test_api_server import start, stop
from tests.ui_support import child_env

# A handful: plain facts, follow-ups that lean on the history, and an unanswerable one.
HANDFUL = ["wind-1", "marathon-1", "fu-1", "fu-2", "unans-1"]


@contextmanager
def serving(work: Path, index: Path, key: str) -> Iterator[str]:
    """`qa serve` with an API key over a copy of `index`; yields its base URL."""
    shutil.copytree(index, work / "index")
    proc, url = start(work, child_env(QA_API_KEY=key, PYTHONUNBUFFERED="1"))
    try:
        yield url
    finally:
        stop(proc)


def messages_of(question: dict) -> list[dict[str, str]]:
    """The question as a chat: its history, then the question as the last user message."""
    return [*question["history"], {"role": "user", "content": question["question"]}]


def asked(http: httpx.Client, question: dict) -> dict:
    """POST /ask's answer to a question of the corpus (with its history)."""
    body = {"question": question["question"], "history": question["history"]}
    response = http.post("/ask", json=body)
    assert response.status_code == 200, response.text
    return response.json()
