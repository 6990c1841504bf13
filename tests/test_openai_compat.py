"""The OpenAI-compatible /v1 routes: the official `openai` client against a real `qa serve` on a
loopback port (plain, streamed, wrong key, bad bodies), and LLM mode in process."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from qa.config import Settings
from qa.engine import Engine
from qa.serving import openai_compat
from qa.serving.app import create_app
from tests.llm_stub import LOAN_Q, TRUE, Scripted
from tests.protocol_support import HANDFUL, QUESTIONS, asked, messages_of, serving

KEY = "openai-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory, corpus_index):
    with serving(tmp_path_factory.mktemp("openai-serve"), corpus_index, KEY) as url:
        yield url


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def http(server):
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server, headers=auth, timeout=60) as c:
        yield c


def test_models_are_the_answering_modes(client):
    assert [m.id for m in client.models.list()] == ["qa-extractive"]  # no LLM configured


@pytest.mark.parametrize("qid", HANDFUL)
def test_completion_equals_ask(client, http, qid):
    question = QUESTIONS[qid]
    expected = asked(http, question)
    reply = client.chat.completions.create(model="qa-extractive", messages=messages_of(question))
    assert reply.object == "chat.completion" and reply.model == "qa-extractive"
    (choice,) = reply.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content == expected["answer"]
    assert choice.message.citations == expected["citations"]
    for field in ("confidence", "confident"):  # travel with the reply when /ask has them
        assert getattr(choice.message, field, None) == expected.get(field)


@pytest.mark.parametrize("qid", HANDFUL)
def test_streamed_completion_equals_ask(client, http, qid):
    question = QUESTIONS[qid]
    expected = asked(http, question)
    stream = client.chat.completions.create(
        model="qa-extractive", messages=messages_of(question), stream=True
    )
    chunks = list(stream)  # the client stops at `data: [DONE]`
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected["answer"]
    cited = [c.choices[0].delta.citations for c in chunks if c.choices[0].delta.model_extra]
    assert cited == [expected["citations"]]


def test_citations_are_verbatim_quotes(client, http):
    question = QUESTIONS["wind-1"]
    reply = client.chat.completions.create(model="qa-extractive", messages=messages_of(question))
    citations = reply.choices[0].message.citations
    assert citations and all(f"[{c['n']}]" in reply.choices[0].message.content for c in citations)
    for c in citations:
        text = http.get(f"/documents/{c['doc_id']}").json()["text"]
        assert text[c["start"] : c["end"]] == c["quote"]


def test_a_wrong_key_is_refused_in_openai_shape(server):
    wrong = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(
            model="qa-extractive", messages=[{"role": "user", "content": "Who?"}]
        )
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    body = httpx.get(f"{server}/v1/models").json()  # no key at all
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert "QA_API_KEY" in body["error"]["message"]


def test_an_empty_message_list_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qa-extractive", messages=[])
    error = caught.value.body
    assert caught.value.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == "messages" and "at least 1" in error["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_bad_questions_are_400s_even_when_streamed(client, stream):
    cases = [
        ([{"role": "user", "content": "   "}], "question is empty"),
        ([{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Hm"}], "last"),
    ]
    for messages, phrase in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="qa-extractive", messages=messages, stream=stream)
        assert phrase in caught.value.body["message"]


def test_an_unknown_model_is_a_404_naming_the_known_ones(client):
    for model in ("gpt-4o", "qa-llm"):  # qa-llm needs QA_LLM_URL
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Who?"}]
            )
        assert caught.value.code == "model_not_found"
        assert "qa-extractive" in caught.value.body["message"]


def test_openai_fields_are_accepted_and_qa_fields_checked(client):
    question = [{"role": "user", "content": QUESTIONS["wind-1"]["question"]}]
    reply = client.chat.completions.create(
        model="qa-extractive",
        messages=question,
        temperature=0.2,
        max_tokens=50,
        extra_body={"top_k": 1},
    )
    assert len({c["doc_id"] for c in reply.choices[0].message.citations}) == 1
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="qa-extractive", messages=question, extra_body={"top_k": 0}
        )
    assert caught.value.body["param"] == "top_k"


# LLM mode, in process: the stream carries the verified answer, never the model's raw words.

REPLY = f"{TRUE}. The loan was $9 trillion."  # the second sentence fails verification


@pytest.fixture(scope="module")
def llm_client(corpus_index, embedder):
    engine = Engine(corpus_index, embedder, Settings(_env_file=None), generator=Scripted(REPLY))
    with TestClient(create_app(Settings(_env_file=None), engine=engine)) as c:
        yield c


def test_llm_mode_streams_only_the_verified_answer(llm_client):
    models = llm_client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["qa-extractive", "qa-llm"]
    ask = llm_client.post("/ask", json={"question": LOAN_Q, "mode": "llm"}).json()
    assert ask["mode"] == "llm" and "trillion" not in ask["answer"]
    body = {"model": "qa-llm", "messages": [{"role": "user", "content": LOAN_Q}], "stream": True}
    with llm_client.stream("POST", "/v1/chat/completions", json=body) as response:
        text = response.read().decode()
    assert "trillion" not in text  # the raw tokens held it; the verified answer does not
    frames = [f.removeprefix("data: ") for f in text.split("\n\n") if f]
    assert frames[-1] == "[DONE]"
    plain = llm_client.post("/v1/chat/completions", json=body | {"stream": False}).json()
    assert plain["choices"][0]["message"]["content"] == ask["answer"]
    assert plain["choices"][0]["message"]["citations"] == ask["citations"]


def test_other_refusals_keep_the_openai_shape(server, http):
    def error_of(response, status: int) -> dict:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error"}
        return response.json()["error"]

    assert error_of(http.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"
    assert error_of(http.get("/v1/nothing"), 404)["code"] == "not_found"
    big = http.post(
        "/v1/chat/completions", content=b"x" * 5_000_000, headers={"Content-Type": "text/plain"}
    )
    assert "MB" in error_of(big, 413)["message"]
    broken = http.post(
        "/v1/chat/completions", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert error_of(broken, 400)["type"] == "invalid_request_error"
    assert set(http.get("/nothing").json()) == {"error", "message"}  # the service's own shape


def test_an_unexpected_failure_is_a_500_in_openai_shape(corpus_index, embedder):
    from qa.serving.app import get_engine

    class Broken:
        generator = None

        def ask(self, *args, **kwargs):
            raise RuntimeError("boom")

    engine = Engine(corpus_index, embedder, Settings(_env_file=None))
    app = create_app(Settings(_env_file=None), engine=engine)
    app.dependency_overrides[get_engine] = lambda: Broken()
    body = {"model": "qa-extractive", "messages": [{"role": "user", "content": "Who?"}]}
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.post("/v1/chat/completions", json=body)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "boom" not in response.text


def test_a_stream_that_fails_midway_ends_with_an_error_frame():
    def events():
        raise RuntimeError("boom")
        yield  # a generator, failing on its first step, as a stream would

    frames = list(openai_compat.chunks(events(), "qa-extractive"))
    first = json.loads(frames[0].removeprefix("data: "))
    assert first["choices"][0]["delta"]["role"] == "assistant"
    last = json.loads(frames[-1].removeprefix("data: "))
    assert last["error"]["type"] == "server_error" and len(frames) == 2
    assert "boom" not in "".join(frames)
