"""What the OpenAI and MCP tests share: a real `qa serve` over the seed index, the seed-news
questions, and the /ask answer each protocol must reproduce."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.test_api_server import start, stop
from tests.ui_support import child_env

ROOT = Path(__file__).resolve().parents[1]
_LINES = (ROOT / "eval/sets/seed-news/questions.jsonl").read_text(encoding="utf-8").splitlines()
SEED_QUESTIONS = {row["id"]: row for row in map(json.loads, _LINES)}
# A handful: plain facts, follow-ups that lean on the history, and unanswerable ones.
HANDFUL = ["seed-1", "seed-3", "seed-fu-1", "seed-fu-3", "seed-unans-1"]


@contextmanager
def seed_server(work: Path, seed_index: Path, key: str) -> Iterator[str]:
    """`qa serve` with an API key over a copy of the seed index; yields its base URL."""
    shutil.copytree(seed_index, work / "index")
    proc, url = start(work, child_env(QA_API_KEY=key, PYTHONUNBUFFERED="1"))
    try:
        yield url
    finally:
        stop(proc)


def messages_of(question: dict) -> list[dict[str, str]]:
    """The question as a chat: its history, then the question as the last user message."""
    return [*question["history"], {"role": "user", "content": question["question"]}]


def asked(http: httpx.Client, question: dict) -> dict:
    """POST /ask's answer to a seed question (with its history)."""
    body = {"question": question["question"], "history": question["history"]}
    response = http.post("/ask", json=body)
    assert response.status_code == 200, response.text
    return response.json()
