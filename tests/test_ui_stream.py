"""Streamed answers in the UI: the client reads the SSE of `POST /ask`, the page shows the verified
answer. The service runs in this process (uvicorn on a free port) over the tests' corpus, with the
loopback stub from tests/llm_stub.py as its OpenAI-compatible model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from streamlit.testing.v1 import AppTest

from qa.config import Settings
from qa.engine import Engine
from qa.serving.app import create_app
from qa.serving.schemas import AskResponse
from tests.conftest import CORPUS, ROOT
from tests.llm_stub import LOAN_Q as QUESTION
from tests.llm_stub import TRUE, stub_server
from tests.ui_support import free_port
from ui import render
from ui.client import Client, ServiceError, Unreachable

APP = ROOT / "ui" / "app.py"
REPLY = f"{TRUE}. The loan was $9 trillion."  # the second sentence is unsupported: removed


@pytest.fixture(scope="module")
def service(corpus_index, embedder) -> Iterator[str]:
    """The URL of the FastAPI service whose engine asks the stub model, served by uvicorn."""
    with stub_server() as (stub, _):
        llm_url = f"{stub}/reply-{quote(REPLY, safe='')}/v1"
        settings = Settings(_env_file=None, llm_url=llm_url, api_key=None)
        engine = Engine(corpus_index, embedder, settings)
        port = free_port()
        config = uvicorn.Config(
            create_app(settings, engine=engine), host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def test_ask_stream_yields_tokens_then_the_verified_answer(service: str) -> None:
    with Client(service) as c:
        events = list(c.ask_stream(QUESTION, [], 5))
        docs = {d.id: c.document(d.id).text for d in c.all_documents().documents}
    *tokens, (last, answer) = events
    assert tokens and {kind for kind, _ in tokens} == {"token"}
    assert "".join(text for _, text in tokens).strip() == REPLY
    assert last == "answer" and isinstance(answer, AskResponse)
    assert answer.mode == "llm" and not answer.abstained
    assert answer.answer == f"{TRUE}. [1]" and "trillion" not in answer.answer
    assert answer.removed_sentences == 1
    assert answer.citations and any("€840 million" in c.quote for c in answer.citations)
    for cite in answer.citations:  # verified: the document's text at the quote's offsets
        assert docs[cite.doc_id][cite.start : cite.end] == cite.quote
        assert cite.quote in (CORPUS / cite.doc_id).read_text(encoding="utf-8")


def test_ask_with_on_token_streams_the_draft_then_returns_the_answer(service: str) -> None:
    pieces: list[str] = []
    with Client(service, on_token=pieces.append) as c:
        answer = c.ask(QUESTION, [], 5)
    assert "".join(pieces).strip() == REPLY
    assert answer.mode == "llm" and answer.answer == f"{TRUE}. [1]"


def test_ask_stream_maps_errors_like_ask(service: str) -> None:
    with Client(service) as c, pytest.raises(ServiceError) as bad:
        list(c.ask_stream("   ", [], 5))
    assert bad.value.status == 422 and bad.value.code == "invalid_input"

    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as c, pytest.raises(Unreachable) as down:
        list(c.ask_stream(QUESTION, [], 5))
    assert down.value.message.startswith(f"Cannot reach the qa service at {url}")


def test_page_streams_then_shows_the_verified_answer(service: str, monkeypatch) -> None:
    monkeypatch.setenv("QA_API_URL", service)
    monkeypatch.delenv("QA_API_KEY", raising=False)
    seen: list[tuple[str, object]] = []
    real = Client.ask_stream

    def spy(self, question, history, top_k):
        for event in real(self, question, history, top_k):
            seen.append(event)
            yield event

    monkeypatch.setattr(Client, "ask_stream", spy)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    at.chat_input[0].set_value(QUESTION).run()
    assert not at.exception, at.exception

    assert [kind for kind, _ in seen[:-1]] == ["token"] * (len(seen) - 1) and len(seen) > 1
    assert seen[-1][0] == "answer"
    reply = at.session_state["messages"][-1]
    assert not reply.get("error"), reply["content"]
    response = reply["response"]
    assert response["mode"] == "llm" and response["removed_sentences"] == 1

    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    answer_md = [m.value for m in at.chat_message[1].markdown]
    assert any("840 million" in v and "**\\[1\\]**" in v for v in answer_md), answer_md
    assert not any("trillion" in v for v in answer_md)  # the draft is gone
    captions = [c.value for c in at.chat_message[1].caption]
    assert render.DRAFT_CAPTION not in captions
    assert any("generated sentences removed" in c for c in captions), captions
    cards = [e.label for e in at.expander if e.label.startswith("[")]
    assert [c.split("]")[0] + "]" for c in cards] == [f"[{c['n']}]" for c in response["citations"]]


def test_an_answer_cut_off_by_the_end_of_the_stream_is_not_shown(service: str) -> None:
    """The service stopped inside its last frame (no blank line after it): the client reports a
    broken stream rather than use an event that may be incomplete."""
    body = {"question": QUESTION, "top_k": 5, "stream": True}
    whole = httpx.post(f"{service}/ask", json=body, timeout=60).text
    assert whole.endswith("\n\n") and "event: answer" in whole
    cut = whole[:-1]  # every line still ends, but the last event is never closed

    def replay(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=cut)

    with Client(service) as c:
        c._http = httpx.Client(base_url=service, transport=httpx.MockTransport(replay))
        with pytest.raises(ServiceError, match="ended before the answer"):
            list(c.ask_stream(QUESTION, [], 5))


def test_draft_and_notes_helpers() -> None:
    assert (
        render.draft_markdown("  The *loan*\n\n# was ") == ":gray[The \\*loan\\*]\n\n:gray[\\# was]"
    )
    assert render.draft_markdown("  ") == ""
    assert render.answer_notes(["2 of 3 generated sentences removed"], 2) == [
        "2 of 3 generated sentences removed"
    ]
    assert render.answer_notes([], 1) == ["1 unsupported sentence removed"]
    assert render.answer_notes(["x"], 0) == ["x"]
