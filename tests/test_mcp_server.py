"""qa's MCP server through the official `mcp` SDK's own client, over both transports: streamable
HTTP at /mcp of a real `qa serve` (behind its API key), and stdio (`qa mcp --index DIR`)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import ROOT, WIND_DOC
from tests.protocol_support import HANDFUL, QUESTIONS, asked, serving
from tests.ui_support import child_env

KEY = "mcp-test-key"
TOOLS = {"ask", "search", "list_documents", "read_document"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, corpus_index):
    with serving(tmp_path_factory.mktemp("mcp-serve"), corpus_index, KEY) as url:
        yield url


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


def over_http(url: str, use: Callable[[Client], Awaitable[Any]], key: str = KEY, **kw) -> Any:
    """Run `use` with an SDK client connected to the service's /mcp."""

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as h,
            Client(streamable_http_client(f"{url}/mcp", http_client=h), **kw) as c,
        ):
            return await use(c)

    return asyncio.run(main())


def call(url: str, tool: str, arguments: dict) -> Any:
    """One tool call over HTTP: the CallToolResult."""
    return over_http(url, lambda c: c.call_tool(tool, arguments))


def result_of(result) -> dict:
    """A successful call's structured result; its text content is the same JSON."""
    assert not result.is_error, result.content
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2026 protocol, and the handshake era
def test_tools_have_typed_input_schemas(server, mode):
    listed = over_http(server, lambda c: c.list_tools(), mode=mode)
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == TOOLS
    ask = tools["ask"].input_schema
    assert ask["required"] == ["question"]
    assert ask["properties"]["question"]["type"] == "string"
    assert ask["properties"]["question"]["minLength"] == 1
    assert ask["properties"]["history"]["maxItems"] == 20
    read = tools["read_document"].input_schema["properties"]
    assert read["start"]["type"] == "integer" and read["start"]["minimum"] == 0
    assert all(t.output_schema for t in tools.values())
    assert all(t.annotations.read_only_hint for t in tools.values())


@pytest.mark.parametrize("qid", HANDFUL)
def test_ask_equals_post_ask(server, http, qid):
    question = QUESTIONS[qid]
    expected = asked(http, question)
    got = result_of(
        call(server, "ask", {"question": question["question"], "history": question["history"]})
    )
    assert got["answer"] == expected["answer"]
    assert got["citations"] == expected["citations"]
    assert got["abstained"] == expected["abstained"] and got["query"] == expected["query"]


def test_search_passages_and_a_citation_read_in_context(server, http):
    def text_of(doc_id: str) -> str:
        return http.get(f"/documents/{doc_id}").json()["text"]

    query = {"query": "Northern Development Bank loan Kestrel Ridge", "top_k": 3}
    found = result_of(call(server, "search", query))
    assert 1 <= len(found["passages"]) <= 3 and found["passages"][0]["doc_id"] == WIND_DOC
    for p in found["passages"]:
        assert text_of(p["doc_id"])[p["start"] : p["end"]] == p["text"]

    answer = result_of(call(server, "ask", {"question": QUESTIONS["wind-1"]["question"]}))
    cite = answer["citations"][0]
    text = text_of(cite["doc_id"])
    args = {"doc_id": cite["doc_id"], "start": cite["start"], "end": cite["end"], "context": 200}
    read = result_of(call(server, "read_document", args))
    assert read["quote"] == cite["quote"] == text[cite["start"] : cite["end"]]
    assert read["window_start"] == max(0, cite["start"] - 200)
    assert read["window_end"] == min(len(text), cite["end"] + 200)
    assert read["text"] == text[read["window_start"] : read["window_end"]]
    assert read["length"] == len(text)


def test_list_documents(server):
    page = result_of(call(server, "list_documents", {}))
    ids = [d["id"] for d in page["documents"]]
    assert page["total"] == 3 and sorted(ids) == ["city-marathon.html", "island-ferry.md", WIND_DOC]
    assert (
        result_of(call(server, "list_documents", {"offset": 1}))["documents"]
        == page["documents"][1:]
    )


BAD = [
    ("ask", {}, "question"),
    ("ask", {"question": ""}, "at least 1 character"),
    ("ask", {"question": "   "}, "question is empty"),
    ("ask", {"question": "Who?", "top_k": 0}, "greater than or equal to 1"),
    ("ask", {"question": "Who?", "mode": "llm"}, "QA_LLM_URL"),
    ("search", {"query": 5}, "valid string"),
    ("list_documents", {"limit": 0}, "limit"),
    ("read_document", {"doc_id": "nope.txt"}, "no document"),
    ("read_document", {"doc_id": WIND_DOC, "start": 50, "end": 10}, "start <= end"),
    ("read_document", {"doc_id": WIND_DOC, "start": 10**7}, "document's length"),
    ("no_such_tool", {}, "Unknown tool"),
]


def test_bad_input_is_a_tool_error_and_the_server_carries_on(server):
    async def use(client: Client) -> None:
        for tool, arguments, phrase in BAD:
            result = await client.call_tool(tool, arguments)
            assert result.is_error, (tool, arguments)
            assert phrase in result.content[0].text, (tool, arguments, result.content)
        assert not (await client.call_tool("list_documents", {})).is_error

    over_http(server, use)


def test_a_wrong_key_is_refused(server):
    refused = httpx.post(f"{server}/mcp", json={})
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    with pytest.raises(ExceptionGroup) as caught:
        over_http(server, lambda c: c.list_tools(), key="wrong")
    assert caught.group_contains(MCPError, depth=None)


def test_stdio_server(corpus_index, http):
    """`qa mcp --index DIR` as a desktop assistant starts it: a subprocess on stdin/stdout."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "qa.cli", "mcp", "--index", str(corpus_index)],
        env=child_env(PYTHONUNBUFFERED="1"),
        cwd=str(ROOT),
    )

    async def main() -> tuple[set[str], list[dict], Any]:
        async with Client(params, read_timeout_seconds=120) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            answers = []
            for qid in HANDFUL[:3]:
                q = QUESTIONS[qid]
                args = {"question": q["question"], "history": q["history"]}
                answers.append(result_of(await client.call_tool("ask", args)))
            bad = await client.call_tool("read_document", {"doc_id": "nope.txt"})
            return names, answers, bad

    names, answers, bad = asyncio.run(main())
    assert names == TOOLS
    for qid, got in zip(HANDFUL[:3], answers, strict=True):
        expected = asked(http, QUESTIONS[qid])
        assert (got["answer"], got["citations"]) == (expected["answer"], expected["citations"])
    assert bad.is_error and "no document" in bad.content[0].text
