"""The chat page's logic with Streamlit's AppTest, against a real `qa serve` process."""

from __future__ import annotations

import html
import re
import sys

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import CORPUS, ROOT, WIND_DOC
from tests.ui_support import free_port, index_corpus, running, wait_for_index
from ui.client import Client

APP = ROOT / "ui" / "app.py"
QUESTION = "How much is the loan for the Kestrel Ridge wind farm?"
MARKED = re.compile(r"<mark[^>]*>(.*?)</mark>", re.DOTALL)


@pytest.fixture(scope="module")
def service(tmp_path_factory, request) -> str:
    """The URL of a real `qa serve` over an index of the tests' corpus."""
    tmp = tmp_path_factory.mktemp("ui-app")
    index_dir, port = tmp / "index", free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--index", str(index_dir), "--port", str(port)]
    # The service loads its model while this process builds the index: two slow starts at once.
    with running(cmd, [], tmp / "serve.log") as proc:
        index_corpus(index_dir, request.getfixturevalue("embedder"))
        wait_for_index(url, proc)
        yield url


@pytest.fixture
def app(service: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("QA_API_URL", service)
    monkeypatch.delenv("QA_API_KEY", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    return at


def ask(at: AppTest, question: str) -> dict:
    """Ask through the chat input; the assistant's stored message."""
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at.session_state["messages"][-1]


def marked(at: AppTest) -> list[str]:
    """The highlighted text of every quote on the page."""
    return [html.unescape(m) for h in at.html for m in MARKED.findall(h.value)]


def test_page_shows_the_index_status(app: AppTest) -> None:
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Documents"] == "3" and int(metrics["Chunks"]) >= 3
    assert not app.error


def test_question_shows_answer_with_cited_quotes(app: AppTest) -> None:
    reply = ask(app, QUESTION)
    assert not reply.get("error"), reply["content"]
    response = reply["response"]
    assert not response["abstained"]
    assert [m.name for m in app.chat_message] == ["user", "assistant"]
    answer_md = [m.value for m in app.chat_message[1].markdown]
    assert any("840 million" in v and "**\\[1\\]**" in v for v in answer_md), answer_md

    citations = response["citations"]
    cards = {e.label.split("]")[0] + "]": e.label for e in app.expander if e.label.startswith("[")}
    assert list(cards) == [f"[{c['n']}]" for c in citations]
    # Each card marks exactly its quote, and the quote is the document's text at its offsets.
    text = (CORPUS / WIND_DOC).read_text(encoding="utf-8")
    quotes = marked(app)
    assert quotes == [c["quote"] for c in citations]
    assert any("€840 million" in q for q in quotes)
    for c in citations:
        assert c["quote"] in text
        assert c["title"] in cards[f"[{c['n']}]"]


def test_whole_document_opens_with_the_quote_marked(app: AppTest, service: str) -> None:
    reply = ask(app, QUESTION)
    first = reply["response"]["citations"][0]
    app.button(key=f"doc-1-{first['n']}").click().run()
    assert not app.exception
    with Client(service) as c:
        doc = c.document(first["doc_id"])
    assert doc.text[first["start"] : first["end"]] == first["quote"]
    whole = [h.value for h in app.html if "qa-doc-" in h.value]
    assert len(whole) == 1
    assert html.unescape(MARKED.search(whole[0]).group(1)) == first["quote"]
    assert "carved from local oak" in whole[0]  # the last paragraph: the whole text


def test_follow_up_sends_the_conversation(app: AppTest, monkeypatch) -> None:
    sent: list[list[dict]] = []
    real_ask = Client.ask

    def spy(self, question, history, top_k):
        sent.append(list(history))
        return real_ask(self, question, history, top_k)

    monkeypatch.setattr(Client, "ask", spy)
    ask(app, QUESTION)
    follow = ask(app, "And how many jobs will it create?")

    assert sent[0] == []
    assert [m["role"] for m in sent[1]] == ["user", "assistant"]
    assert sent[1][0]["content"] == QUESTION
    response = follow["response"]
    assert not response["abstained"]
    assert response["query"] != "And how many jobs will it create?"
    assert "2,100" in response["answer"] or "180" in response["answer"]
    assert any(c.value.startswith("searched: ") for c in app.caption)
    assert len(app.chat_message) == 4


def test_off_topic_question_abstains_with_related_reading(app: AppTest) -> None:
    reply = ask(app, "What is the capital of Australia?")
    assert reply["response"]["abstained"]
    warnings = [w.value for w in app.warning]
    assert any(w.startswith("The sources don't say") for w in warnings), warnings
    assert not app.success  # no short answer callout
    assert any("Related reading" in m.value for m in app.markdown)
    related = [
        e for e in app.expander if not e.label.startswith("[") and "Documents" not in e.label
    ]
    assert len(related) == len(reply["response"]["passages"]) > 0


def test_service_down_says_how_to_fix_it(monkeypatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("QA_API_URL", url)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    expected = f"Cannot reach the qa service at {url}"
    assert any(e.startswith(expected) and "`qa serve`" in e for e in errors), errors

    reply = ask(at, QUESTION)
    assert reply["error"] and reply["content"].startswith(expected)
    assert not at.exception
    assert at.chat_message[1].error[0].value.startswith(expected)
