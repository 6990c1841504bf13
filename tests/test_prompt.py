"""The prompt: cl100k_base counted offline, numbered passages fitted into the token budget."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qa.language.question import Question
from qa.llm.prompt import NOT_IN_SOURCES, build_prompt
from qa.records import Passage

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing answers, connections are refused


def _run_offline(code: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter where any download through HTTP(S) must fail."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIKTOKEN", "DATA_GYM"))}
    clean |= {
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "HTTPS_PROXY": DEAD_PROXY,
        "HTTP_PROXY": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "NO_PROXY": "",
        **env,
    }
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120
    )


def test_cl100k_base_loads_with_networking_impossible(tmp_path):
    code = (
        "from qa.llm.prompt import count_tokens; import os;"
        "print(count_tokens('The loan was $1.25 billion.'), os.environ['TIKTOKEN_CACHE_DIR'])"
    )
    done = _run_offline(code, tmp_path)
    assert done.returncode == 0, done.stderr
    count, cache = done.stdout.split()
    assert int(count) == 9
    assert cache == str(tmp_path / "home" / ".cache" / "qa" / "tiktoken")


def test_without_the_bundled_file_tiktoken_would_try_to_download(tmp_path):
    """The control: the dead proxy really blocks tiktoken's own download."""
    code = "import tiktoken; tiktoken.get_encoding('cl100k_base')"
    done = _run_offline(code, tmp_path, TIKTOKEN_CACHE_DIR=str(tmp_path / "empty"))
    assert done.returncode != 0
    assert "Proxy" in done.stderr or "Connection" in done.stderr


def _passage(n: int, words: int = 60) -> Passage:
    sentences = [f"Sentence {i} of passage {n} says fact number {i}." for i in range(words // 8)]
    text = " ".join(sentences)
    return Passage(
        doc_id=f"doc{n}",
        title=f"Title {n}",
        date="2026-02-06",
        source=f"doc{n}.txt",
        start=0,
        end=len(text),
        text=text,
        score=1.0,
    )


def test_passages_are_numbered_best_first_and_all_fit_a_large_budget():
    passages = [_passage(i) for i in range(3)]
    prompt = build_prompt(Question.read("What does passage 1 say?"), passages, 3000)
    assert [(s.n, s.passage) for s in prompt.sources] == [(1, 0), (2, 1), (3, 2)]
    user = prompt.messages[1]["content"]
    assert "[1] (Title 0, 2026-02-06)\n" + passages[0].text in user
    assert user.endswith("Question: What does passage 1 say?")
    assert NOT_IN_SOURCES in prompt.messages[0]["content"]
    assert prompt.tokens <= 3000


@pytest.mark.parametrize("budget", [220, 260, 300, 400])
def test_a_small_budget_cuts_a_passage_between_sentences_and_stops(budget):
    passages = [_passage(i, words=120) for i in range(4)]
    prompt = build_prompt(Question.read("What does passage 1 say?"), passages, budget)
    assert prompt.tokens <= budget
    assert prompt.sources, "some source fits"
    *whole, last = prompt.sources
    assert all(s.end == len(passages[s.passage].text) for s in whole)
    shown = passages[last.passage].text[last.start : last.end]
    assert shown.endswith(".") and shown in prompt.messages[1]["content"]


def test_a_budget_too_small_for_any_sentence_gives_no_source():
    bare = build_prompt(Question.read("What?"), [], 3000).tokens
    prompt = build_prompt(Question.read("What?"), [_passage(0)], bare + 5)
    assert prompt.sources == [] and prompt.tokens == bare
