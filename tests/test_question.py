"""A question is read once into a `Question` record, and every part of the answer step reads
that record: nothing works out the asked-for kind, the names or the terms again."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qa.answering import confidence
from qa.answering import extractive as answering
from qa.config import Settings
from qa.encoders.embedding import Embedder
from qa.engine import Engine
from qa.language import answer_types, lexical
from qa.language.question import Question
from qa.llm import generation
from qa.records import Final, Message, Passage
from tests.llm_stub import TRUE, Scripted

PREAMBLE = "Officials in Islamabad met Donald Trump this week."
JOBS_Q = f"{PREAMBLE} How many jobs will the Reko Diq mine create by 2028?"


def test_a_question_is_read_into_what_the_pipeline_needs() -> None:
    q = Question.read(JOBS_Q)
    assert q.text == JOBS_Q and q.query == JOBS_Q
    assert q.asking == "How many jobs will the Reko Diq mine create by 2028?"
    assert q.asked == answer_types.asked(JOBS_Q)
    assert q.kind == answer_types.COUNT and q.asked.counted == ("jobs",)
    # the preamble is the asker's context: only the asking sentence's names must be found
    assert q.must_match == {"reko", "diq", "2028"}
    assert {"Islamabad", "Donald", "Trump", "Reko", "Diq", "2028"} <= set(q.names)
    assert q.words == tuple(lexical.words(JOBS_Q))
    assert q.terms == tuple(lexical.terms(JOBS_Q))
    assert q.lemma_terms == tuple(lexical.lemma_terms(JOBS_Q))
    assert q.query_lemma_terms == q.lemma_terms and q.figures == ("2028",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.text = "changed"  # type: ignore[misc]


def test_a_follow_up_is_read_with_the_query_it_was_searched_with() -> None:
    q = Question.read("When was it founded?", "When was it founded? (Harvard)")
    assert q.kind == answer_types.DATE and q.must_match == frozenset()
    assert "harvard" in q.query_lemma_terms and "harvard" not in q.lemma_terms


@pytest.fixture(scope="module")
def engine(corpus_index: Path, embedder: Embedder) -> Iterator[Engine]:
    reply = f"{TRUE} [1]."
    engine = Engine(corpus_index, embedder, Settings(_env_file=None), generator=Scripted(reply))
    yield engine
    engine.close()


def _spy(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, seen: list[tuple[str, Any]]
) -> None:
    """Wrap `owner.name` so that the question it is called with lands in `seen`."""
    real: Callable[..., Any] = getattr(owner, name)

    def spy(question: Any, *args: Any, **kw: Any) -> Any:
        seen.append((name, question))
        return real(question, *args, **kw)

    monkeypatch.setattr(owner, name, spy)


@pytest.mark.parametrize("mode", ["extractive", "llm"])
@pytest.mark.parametrize("streamed", [False, True])
def test_the_engine_reads_a_question_once_and_hands_the_record_down(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, mode: str, streamed: bool
) -> None:
    reads: list[Question] = []
    read = Question.read.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Question], text: str, query: str | None = None) -> Question:
        reads.append(read(cls, text, query))
        return reads[-1]

    monkeypatch.setattr(Question, "read", classmethod(counted))
    seen: list[tuple[str, Any]] = []
    for name in ("score_sentences", "missing_terms", "short_answer", "abstain"):
        _spy(monkeypatch, answering, name, seen)
    _spy(monkeypatch, confidence, "evidence", seen)
    _spy(monkeypatch, generation, "build_prompt", seen)
    assert engine.reader is not None
    _spy(monkeypatch, engine.reader, "read", seen)
    history: list[Message] = [
        {"role": "user", "content": "What did the Northern Development Bank approve?"},
        {"role": "assistant", "content": "A loan for a wind farm."},
    ]
    question = "How much did it lend for the Kestrel Ridge wind farm?"
    if streamed:
        events = list(engine.ask_stream(question, history, mode=mode))
        assert isinstance(events[-1], Final)
        result = events[-1].answer
    else:
        result = engine.ask(question, history, mode=mode)

    assert len(reads) == 1, "the question is read once"
    (asked,) = reads
    assert asked.text == question and asked.query == result.query != question
    assert not result.abstained and result.mode == mode
    parts = {name for name, _ in seen}
    expected = {"score_sentences", "missing_terms", "short_answer"}
    expected |= {"evidence", "read"} if mode == "extractive" else {"build_prompt"}
    assert expected <= parts
    for name, received in seen:
        # the reader is a model: it reads the text the record was made of
        assert received is (asked.text if name == "read" else asked), name


def _passage(text: str, doc_id: str = "d.txt", start: int = 0) -> Passage:
    return Passage(
        doc_id=doc_id,
        title="Doc",
        date=None,
        source=doc_id,
        start=start,
        end=start + len(text),
        text=text,
        score=1.0,
    )


def test_an_answer_cites_each_quote_once_numbered_by_first_use() -> None:
    one, two = _passage("Alpha rose. Beta fell.", "a.txt", 5), _passage("Gamma held.", "b.txt")

    def quoted(said: str, passage: int, start: int, end: int, text: str) -> answering.Quoted:
        return answering.Quoted(
            said=said, passage=passage, start=start, end=end, quote=text, score=0.5
        )

    result = answering.cited(
        "q",
        [one, two],
        [
            quoted("Gamma held on.", 1, 0, 11, "Gamma held."),
            quoted("Alpha went up.", 0, 5, 16, "Alpha rose."),
            quoted("Gamma did hold.", 1, 0, 11, "Gamma held."),  # the first quote again
        ],
        short=None,
    )
    assert result.answer == "Gamma held on. [1] Alpha went up. [2] Gamma did hold. [1]"
    assert [(c.n, c.doc_id, c.quote) for c in result.citations] == [
        (1, "b.txt", "Gamma held."),
        (2, "a.txt", "Alpha rose."),
    ]
    texts = {"a.txt": "xxxxxAlpha rose. Beta fell.", "b.txt": "Gamma held."}
    assert all(texts[c.doc_id][c.start : c.end] == c.quote for c in result.citations)
    assert not result.abstained and result.passages == [one, two] and result.query == "q"
