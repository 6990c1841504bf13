"""qa as a Model Context Protocol server (the official `mcp` SDK), for assistants and editors.

Four tools over the engine: `ask` (the answer with its citations, as POST /ask returns it),
`search` (ranked passages), `list_documents`, and `read_document` (a document's text around a
citation). Every result carries verbatim quotes with their character offsets
(`document.text[start:end] == quote`). Inputs are typed (JSON schemas from the signatures); bad
input and the library's errors come back as tool errors with the reason, never as a crash.

Two transports: stdio (`qa mcp --index DIR`, started by a desktop assistant) and streamable HTTP,
mounted on the service at /mcp (`HttpTransport`, behind the service's API key).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from qa import __version__ as qa_version
from qa.config import MAX_TOP_K, QUESTION_CHARS_CEILING
from qa.engine import Engine
from qa.errors import InvalidInput, QAError
from qa.records import Message as Turn
from qa.serving.schemas import (
    MAX_HISTORY,
    OCR_DOC,
    PAGE_DOC,
    SECTION_DOC,
    AskResponse,
    DocumentPage,
    DocumentSummary,
    FiltersIn,
    Message,
    PassageOut,
    SearchResponse,
)
from qa.sources.locations import mark_at

MAX_CONTEXT = 20_000  # characters either side of a span that read_document returns, at most
INSTRUCTIONS = (
    "Answers questions from the user's own documents with verbatim, cited quotes. Use `ask` "
    "for an answer (it says so when the sources don't hold one), `search` for passages, "
    "`list_documents` for what is indexed, and `read_document` to read around a citation. "
    "Quote the citations' text as given: every quote is document.text[start:end]."
)
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

Question = Annotated[
    str,
    Field(
        min_length=1,
        max_length=QUESTION_CHARS_CEILING,
        description="The question, in plain words (at most QA_MAX_QUESTION_CHARS characters).",
    ),
]
TopK = Annotated[
    int | None,
    Field(ge=1, le=MAX_TOP_K, description="Passages to retrieve [default: QA_TOP_K, 5]."),
]
Filters = Annotated[
    FiltersIn | None, Field(description="Limit which documents may answer (ids, dates).")
]


class DocumentExcerpt(BaseModel):
    """A window of a document's text around a span: text == document.text[window_start:window_end]
    and quote == document.text[start:end]."""

    doc_id: str
    title: str
    date: str | None
    source: str
    length: int = Field(description="Characters in the whole document text.")
    start: int
    end: int
    quote: str = Field(description="document.text[start:end], verbatim.")
    window_start: int
    window_end: int
    text: str = Field(description="document.text[window_start:window_end], verbatim.")
    page: int | None = Field(None, description=PAGE_DOC)
    section: str | None = Field(None, description=SECTION_DOC)
    ocr: bool = Field(False, description=OCR_DOC)


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    """The library's errors reach the assistant as tool errors that say what to do."""
    try:
        yield
    except QAError as exc:
        raise ToolError(str(exc)) from exc


def build(engine_of: Callable[[], Engine]) -> MCPServer:
    """The MCP server with qa's tools over the engine that `engine_of` returns."""
    # WARNING: the SDK sets up the root logger when nobody has; the service's INFO stays quiet.
    server = MCPServer(
        name="qa", version=qa_version, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    @server.tool(annotations=READ_ONLY)
    def ask(
        question: Question,
        history: Annotated[
            list[Message],
            Field(
                max_length=MAX_HISTORY,
                description="Earlier turns, oldest first, for a follow-up question.",
            ),
        ] = [],  # noqa: B006 - the SDK reads the default into the schema; never mutated
        top_k: TopK = None,
        mode: Annotated[
            Literal["extractive", "llm"] | None,
            Field(description="extractive (quotes only) or llm (needs QA_LLM_URL)."),
        ] = None,
        filters: Filters = None,
    ) -> AskResponse:
        """Answer a question from the documents: the answer with [n] markers, and the
        citations they point to (quote, document, offsets, page/section); abstains, with the
        closest passages, when the sources don't say."""
        turns: list[Turn] = [{"role": m.role, "content": m.content} for m in history]
        with _as_tool_errors():
            answer = engine_of().ask(
                question, turns, top_k, filters.to_filters() if filters else None, mode
            )
        return AskResponse.of(answer)

    @server.tool(annotations=READ_ONLY)
    def search(query: Question, top_k: TopK = None, filters: Filters = None) -> SearchResponse:
        """Ranked passages for a query, without an answer; each passage's text is
        document.text[start:end]."""
        with _as_tool_errors():
            found = engine_of().search(query, top_k, filters.to_filters() if filters else None)
        return SearchResponse(query=query.strip(), passages=[PassageOut.of(p) for p in found])

    @server.tool(annotations=READ_ONLY)
    def list_documents(
        offset: Annotated[int, Field(ge=0, description="Documents to skip.")] = 0,
        limit: Annotated[int, Field(ge=1, le=1000, description="Documents per page.")] = 50,
    ) -> DocumentPage:
        """One page of the indexed documents (id, title, date, source), sorted by id."""
        with _as_tool_errors():
            engine = engine_of()
            docs = [] if engine.store.current_version() is None else engine.documents()
        return DocumentPage(
            total=len(docs),
            offset=offset,
            limit=limit,
            documents=[DocumentSummary(**d) for d in docs[offset : offset + limit]],
        )

    @server.tool(annotations=READ_ONLY)
    def read_document(
        doc_id: Annotated[str, Field(min_length=1, description="The document id.")],
        start: Annotated[
            int, Field(ge=0, description="Where the span starts (a citation's start).")
        ] = 0,
        end: Annotated[
            int | None,
            Field(ge=0, description="Where the span ends (a citation's end) [default: start]."),
        ] = None,
        context: Annotated[
            int,
            Field(ge=0, le=MAX_CONTEXT, description="Characters to show either side of it."),
        ] = 1000,
    ) -> DocumentExcerpt:
        """A document's text around a span (a citation's start and end offsets), with the
        span itself verbatim; from the start of the document by default."""
        with _as_tool_errors():
            doc = engine_of().document(doc_id)
            end = start if end is None else end
            if not start <= end <= len(doc.text):
                raise InvalidInput(
                    f"start and end must satisfy 0 <= start <= end <= {len(doc.text)} (the "
                    f"document's length), not start={start}, end={end}"
                )
        window_start, window_end = max(0, start - context), min(len(doc.text), end + context)
        mark = mark_at(doc.marks, start)
        return DocumentExcerpt(
            doc_id=doc.id,
            title=doc.title,
            date=doc.date,
            source=doc.source,
            length=len(doc.text),
            start=start,
            end=end,
            quote=doc.text[start:end],
            window_start=window_start,
            window_end=window_end,
            text=doc.text[window_start:window_end],
            page=mark.page if mark else None,
            section=mark.section if mark else None,
            ocr=mark.ocr if mark else False,
        )

    return server


def run_stdio(engine: Engine) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    build(lambda: engine).run("stdio")


class HttpTransport:
    """The streamable-HTTP transport, as an ASGI app to route /mcp to.

    Enter `running()` in the host app's lifespan: each run gets a fresh server and session
    manager (the SDK runs a manager once), so an app can be started again, as tests do.
    Stateless: every request stands alone, so nothing is kept between requests.
    """

    def __init__(self, engine_of: Callable[[], Engine], localhost_only: bool) -> None:
        self.engine_of = engine_of
        # DNS-rebinding protection: a web page must not reach an unprotected local service.
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        self.security = TransportSecuritySettings(
            enable_dns_rebinding_protection=localhost_only,
            allowed_hosts=hosts,
            allowed_origins=[f"http://{h}" for h in hosts],
        )
        self._running: list[StreamableHTTPSessionManager] = []

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        server = build(self.engine_of)
        server.streamable_http_app(
            stateless_http=True, json_response=True, transport_security=self.security
        )
        manager = server.session_manager
        async with manager.run():
            self._running.append(manager)
            try:
                yield
            finally:
                self._running.remove(manager)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._running:
            raise RuntimeError("the MCP transport is not running; enter running() first")
        await self._running[-1].handle_request(scope, receive, send)
