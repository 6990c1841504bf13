"""LLM mode through Engine and the HTTP service: POST /ask, and /ask with stream=true as SSE."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from qa.config import Settings
from qa.engine import Engine
from qa.llm import event_stream
from qa.llm.generation import Final, Token
from qa.serving.app import create_app
from qa.serving.schemas import AskResponse
from tests.llm_stub import LOAN_Q as QUESTION
from tests.llm_stub import TRUE, Scripted

REPLY = f"{TRUE}. The loan was $9 trillion."  # no markers: checked against every source


@pytest.fixture(scope="module")
def engine(corpus_index, embedder) -> Engine:
    return Engine(corpus_index, embedder, Settings(_env_file=None), generator=Scripted(REPLY))


def test_engine_ask_uses_the_generator_and_verifies_it(engine):
    result = engine.ask(QUESTION)
    assert result.mode == "llm" and result.removed_sentences == 1
    assert result.answer == f"{TRUE}. [1]"
    assert {"generate", "verify", "retrieve", "total"} <= set(result.timings_ms)
    for c in result.citations:
        assert engine.document(c.doc_id).text[c.start : c.end] == c.quote


def test_without_a_url_the_engine_stays_extractive(corpus_index, embedder, monkeypatch):
    monkeypatch.delenv("QA_LLM_URL", raising=False)
    plain = Engine(corpus_index, embedder, Settings(_env_file=None))
    assert plain.generator is None and plain.ask(QUESTION).mode == "extractive"
    events = list(plain.ask_stream(QUESTION))
    assert len(events) == 1 and isinstance(events[0], Final)


def test_ask_stream_checks_input_before_streaming(engine):
    from qa.errors import InvalidInput

    with pytest.raises(InvalidInput):
        engine.ask_stream("   ")


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(Settings(_env_file=None), engine=engine)) as c:
        yield c


def test_post_ask_returns_the_verified_llm_answer(client):
    body = client.post("/ask", json={"question": QUESTION}).json()
    assert body["mode"] == "llm" and body["removed_sentences"] == 1
    assert "trillion" not in body["answer"]


def test_post_ask_streams_tokens_then_the_answer_as_sse(client):
    with client.stream("POST", "/ask", json={"question": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(event_stream.MEDIA_TYPE)
        events = [(e.event, e.data) for e in event_stream.events(response)]
    *tokens, (last, data) = events
    assert tokens and {e for e, _ in tokens} == {"token"}
    assert "".join(json.loads(d)["text"] for _, d in tokens) == REPLY
    assert last == "answer"
    answer = AskResponse.model_validate_json(data)
    assert answer.mode == "llm" and answer.answer == f"{TRUE}. [1]"
    assert answer.removed_sentences == 1 and "total" in answer.timings_ms


def test_a_bad_streamed_question_gets_the_usual_422(client):
    response = client.post("/ask", json={"question": " ", "stream": True})
    assert response.status_code == 422 and response.json()["error"] == "invalid_input"


def test_engine_stream_events(engine):
    events = list(engine.ask_stream(QUESTION))
    assert isinstance(events[0], Token) and isinstance(events[-1], Final)


def test_mode_chooses_extractive_or_llm_per_request(engine, client):
    assert engine.ask(QUESTION, mode="extractive").mode == "extractive"
    assert engine.ask(QUESTION, mode="llm").mode == "llm"
    body = client.post("/ask", json={"question": QUESTION, "mode": "extractive"}).json()
    assert body["mode"] == "extractive" and body["removed_sentences"] == 0
    bad = client.post("/ask", json={"question": QUESTION, "mode": "poetry"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_input"


def test_llm_mode_without_an_llm_is_a_clear_422(corpus_index, embedder, monkeypatch):
    monkeypatch.delenv("QA_LLM_URL", raising=False)
    plain = Engine(corpus_index, embedder, Settings(_env_file=None))
    with TestClient(create_app(Settings(_env_file=None), engine=plain)) as c:
        response = c.post("/ask", json={"question": QUESTION, "mode": "llm"})
    assert response.status_code == 422
    assert "QA_LLM_URL" in response.json()["message"]
