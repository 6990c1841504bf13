"""Generated answers with scripted generators and a misbehaving HTTP server: verification,
abstention, fallbacks, deadlines, streaming and SSE framing. The real model is in test_llm_server.
"""

from __future__ import annotations

import json
import re
import threading
import time
from urllib.parse import quote

import httpx
import pytest

from qa.answering import extractive as answering
from qa.config import Settings
from qa.eval.local_llm import free_port
from qa.language.question import Question
from qa.llm.client import (
    Generator,
    LLMTimeout,
    OpenAICompatible,
    generator_from_settings,
    reply_text,
)
from qa.llm.event_stream import MEDIA_TYPE
from qa.llm.event_stream import events as read_events
from qa.llm.generation import Final, Token, answer_with_llm, stream_answer_with_llm
from qa.retrieval import search as retrieval
from qa.serving import sse
from qa.serving.schemas import AskResponse
from qa.store import folder as store
from tests.llm_stub import LOAN_Q, STALL_S, TRUE, Scripted, stub_server


class Broken(Generator):
    name = "broken"

    def complete(self, messages, stream=False):
        raise RuntimeError("a bug in a generator")


@pytest.fixture(scope="module")
def indexed(corpus_index, embedder):
    snap = store.open_snapshot(corpus_index, embedder.name, embedder.dim)
    yield snap, answering.Idf(snap), embedder
    snap.close()


def ask(indexed, generator, question=LOAN_Q, **kw):
    snap, idf, embedder = indexed
    passages = retrieval.search(snap, embedder, question, 5)
    return answer_with_llm(Question.read(question), passages, idf, generator, embedder, **kw)


def source_of(indexed, needle: str, question=LOAN_Q) -> int:
    """The prompt number of the first passage holding `needle`."""
    snap, _, embedder = indexed
    passages = retrieval.search(snap, embedder, question, 5)
    return next(i for i, p in enumerate(passages, start=1) if needle in p.text)


def assert_verbatim(indexed, answer) -> None:
    snap = indexed[0]
    for c in answer.citations:
        assert snap.document(c.doc_id).text[c.start : c.end] == c.quote


def test_an_invented_fact_is_removed_and_the_true_one_kept_with_its_quote(indexed):
    n = source_of(indexed, "approved an €840 million")
    generator = Scripted(f"{TRUE} [{n}]. The loan was $9 trillion [{n}].")
    result = ask(indexed, generator)
    assert result.mode == "llm" and not result.abstained
    assert result.answer == f"{TRUE}. [1]"
    assert "trillion" not in result.answer
    assert result.removed_sentences == 1
    assert any("1 of 2 generated sentences removed" in note for note in result.notes)
    assert [c.n for c in result.citations] == [1]
    assert "approved an €840 million loan" in result.citations[0].quote
    assert result.short_answer == "€840 million"
    assert_verbatim(indexed, result)
    assert "generate" in result.timings_ms and "verify" in result.timings_ms


def test_citations_are_renumbered_by_first_use(indexed):
    q = "How many jobs will the Kestrel Ridge wind farm create?"
    jobs = source_of(indexed, "2,100 construction jobs", q)
    loan = source_of(indexed, "approved an €840 million", q)
    reply = f"It will create 2,100 construction jobs [{jobs}]. {TRUE} [{loan}]."
    result = ask(indexed, Scripted(reply), question=q)
    assert result.removed_sentences == 0
    assert re.findall(r"\[(\d)\]", result.answer) == ["1", "2"]
    assert [c.n for c in result.citations] == [1, 2]
    assert "2,100 construction jobs" in result.citations[0].quote
    assert_verbatim(indexed, result)


def test_when_every_sentence_is_invented_the_answer_abstains(indexed):
    result = ask(indexed, Scripted("The loan was $9 trillion [1]. Elon Musk approved it [2]."))
    assert result.abstained and result.citations == [] and result.mode == "llm"
    assert result.removed_sentences == 2
    assert result.answer.startswith("The sources don't say")


def test_or_falls_back_to_the_extractive_answer_when_asked_to(indexed):
    result = ask(indexed, Scripted("The loan was $9 trillion [1]."), on_all_removed="extractive")
    assert not result.abstained and result.mode == "extractive"
    assert "€840 million" in result.answer and result.removed_sentences == 1
    assert_verbatim(indexed, result)


def test_a_true_sentence_that_does_not_answer_the_question_is_no_answer(indexed):
    aside = (
        "The regional energy minister said the wind farm was central to the region's plan to "
        "close its last coal plant by 2031."
    )
    result = ask(indexed, Scripted(aside))
    assert result.abstained and result.mode == "llm" and result.removed_sentences == 0
    assert any("don't answer the question" in note for note in result.notes)


def test_the_model_is_not_asked_when_the_passages_do_not_cover_the_question(indexed):
    generator = Scripted("Canberra is the capital of Australia [1].")
    result = ask(indexed, generator, question="What is the capital of Australia?")
    assert result.abstained and generator.asked == []
    assert any("not asked" in note for note in result.notes)


def test_a_refusal_abstains_without_removing_anything(indexed):
    result = ask(indexed, Scripted("The sources don't say."))
    assert result.abstained and result.removed_sentences == 0
    assert any("found no answer" in note for note in result.notes)


def test_a_generator_bug_never_reaches_the_caller(indexed):
    result = ask(indexed, Broken())
    assert result.mode == "extractive" and "€840 million" in result.answer
    assert any("RuntimeError" in note for note in result.notes)


def test_streaming_yields_the_raw_tokens_then_the_verified_answer(indexed):
    snap, idf, embedder = indexed
    n = source_of(indexed, "approved an €840 million")
    reply = f"{TRUE} [{n}]. The loan was $9 trillion [{n}]."
    passages = retrieval.search(snap, embedder, LOAN_Q, 5)
    events = list(
        stream_answer_with_llm(Question.read(LOAN_Q), passages, idf, Scripted(reply), embedder)
    )
    *tokens, final = events
    assert tokens and all(isinstance(t, Token) for t in tokens)
    assert "".join(t.text for t in tokens) == reply
    assert isinstance(final, Final) and final.answer.removed_sentences == 1

    frames = "".join(sse.frames(events))
    parsed = [(e.event, e.data) for e in read_events(event_stream(frames))]
    assert [e for e, _ in parsed] == ["token"] * len(tokens) + ["answer"]
    assert "".join(json.loads(d)["text"] for _, d in parsed[:-1]) == reply
    body = AskResponse.model_validate_json(parsed[-1][1])
    assert body.mode == "llm" and body.answer == final.answer.answer


def event_stream(text: str) -> httpx.Response:
    """A response whose body is `text`, as `text/event-stream`."""
    return httpx.Response(200, headers={"content-type": MEDIA_TYPE}, content=text.encode())


def read(text: str) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in read_events(event_stream(text))]


def test_an_sse_frame_keeps_a_multi_line_payload_whole():
    frame = sse.frame("answer", "line one\nline two")
    assert frame == "event: answer\ndata: line one\ndata: line two\n\n"
    assert read(frame) == [("answer", "line one\nline two")]


def test_sse_lines_end_only_at_cr_or_lf():
    """A token holding characters Python's splitlines() breaks at (U+2028, NEL, FS) arrives
    whole; CRLF and CR line ends are read as LF."""
    text = "one\u2028two\x85three\x1cfour"
    frame = next(sse.frames([Token(text)]))
    assert [json.loads(data)["text"] for _, data in read(frame)] == [text]
    assert read("event: token\r\ndata: a\r\n\r\nevent: answer\rdata: b\r\r") == [
        ("token", "a"),
        ("answer", "b"),
    ]


def test_an_event_cut_off_by_the_end_of_the_stream_is_dropped():
    """An event ends at a blank line; one the stream ends inside is incomplete, never used."""
    complete = sse.frame("token", '{"text": "a"}')
    assert read(complete + 'event: answer\ndata: {"answer": "cut"}\n') == [
        ("token", '{"text": "a"}')
    ]
    assert read(complete + ": a comment\n\n") == [("token", '{"text": "a"}')]


# The HTTP client, against a stub server on loopback.


@pytest.fixture(scope="module")
def stub():
    with stub_server() as (root, requests):
        yield root, requests


def client(root: str, behaviour: str, timeout_s: float = 5.0, **kw) -> OpenAICompatible:
    return OpenAICompatible(f"{root}/{behaviour}/v1", timeout_s=timeout_s, **kw)


def test_the_client_speaks_openai_chat_completions(stub):
    root, requests = stub
    gen = client(root, "reply-" + quote("Hello there [1]."), model="m1", api_key="k")
    assert reply_text(gen, [{"role": "user", "content": "hi"}]) == "Hello there [1]."
    assert "".join(gen.complete([{"role": "user", "content": "hi"}], stream=True)) == (
        "Hello there [1]. "
    )
    path, body, headers = requests[-1]
    assert path.endswith("/v1/chat/completions")
    assert body["model"] == "m1" and body["stream"] is True and body["max_tokens"] == 300
    assert headers["Authorization"] == "Bearer k"


@pytest.mark.parametrize("behaviour", ["garbage", "error"])
def test_garbage_or_errors_fall_back_to_the_extractive_answer(indexed, stub, behaviour):
    result = ask(indexed, client(stub[0], behaviour))
    assert result.mode == "extractive" and "€840 million" in result.answer
    assert any("could not answer" in note for note in result.notes)


def test_an_unreachable_server_falls_back_to_the_extractive_answer(indexed):
    result = ask(indexed, OpenAICompatible(f"http://127.0.0.1:{free_port()}/v1"))
    assert result.mode == "extractive" and not result.abstained
    assert any("unreachable" in note for note in result.notes)


# The stub stalls for STALL_S (60 s). Returning in under half of that proves the deadline cut
# the wait short, with a margin no loaded machine eats; how fast is `qa bench`'s business.


@pytest.mark.parametrize("stream", [False, True])
def test_a_slow_server_is_cut_off_at_the_deadline(indexed, stub, stream):
    snap, idf, embedder = indexed
    passages = retrieval.search(snap, embedder, LOAN_Q, 5)
    for behaviour in ("slow", "trickle"):
        gen = client(stub[0], behaviour, timeout_s=0.5)
        t0 = time.monotonic()
        if stream:
            events = list(
                stream_answer_with_llm(Question.read(LOAN_Q), passages, idf, gen, embedder)
            )
            result = events[-1].answer
        else:
            result = answer_with_llm(Question.read(LOAN_Q), passages, idf, gen, embedder)
        assert time.monotonic() - t0 < STALL_S / 2, behaviour
        assert result.mode == "extractive" and "€840 million" in result.answer  # the fallback
        assert any("within 0.5 s" in note for note in result.notes), result.notes


def test_the_deadline_is_total_not_per_read(stub):
    """A line every 0.2 s never trips a per-read timeout: only a total deadline ends this."""
    gen = client(stub[0], "trickle", timeout_s=0.8)
    t0 = time.monotonic()
    with pytest.raises(LLMTimeout, match="within 0.8 s"):
        list(gen.complete([{"role": "user", "content": "hi"}], stream=True))
    assert time.monotonic() - t0 < STALL_S / 2
    # The worker thread sees at the stub's next line that it was given up, and ends.
    until = time.monotonic() + STALL_S / 2
    while any(t.name == "llm-request" for t in threading.enumerate()):
        assert time.monotonic() < until, "the worker thread outlived its caller"
        time.sleep(0.05)


def test_a_streamed_chunk_cut_off_by_the_end_of_the_reply_is_dropped(stub):
    gen = client(stub[0], "cut-Hello")
    assert list(gen.complete([{"role": "user", "content": "hi"}], stream=True)) == ["Hello"]


def test_one_http_client_serves_every_call_until_closed(stub, monkeypatch):
    made = []

    class Counted(httpx.Client):
        def __init__(self, *args, **kwargs) -> None:
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", Counted)
    with client(stub[0], "reply-" + quote("Hi [1].")) as gen:
        for stream in (False, True, False):
            reply = "".join(gen.complete([{"role": "user", "content": "hi"}], stream))
            assert reply.strip() == "Hi [1]."
            assert len(made) == 1
    assert made[0].is_closed


def test_no_url_means_no_generator(monkeypatch):
    monkeypatch.delenv("QA_LLM_URL", raising=False)
    assert generator_from_settings(Settings(_env_file=None)) is None
    monkeypatch.setenv("QA_LLM_URL", "http://127.0.0.1:1/v1/")
    monkeypatch.setenv("QA_LLM_TIMEOUT_S", "7")
    gen = generator_from_settings(Settings(_env_file=None))
    assert isinstance(gen, OpenAICompatible)
    assert gen.url == "http://127.0.0.1:1/v1" and gen.timeout_s == 7
