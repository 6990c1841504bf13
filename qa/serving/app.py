"""The HTTP service: the Engine behind FastAPI routes, with OpenAPI docs at /docs and /redoc.

The models (both runtimes of the encoder, the reader) and the index load once, at start: `qa serve`
loads them in the background, so `/health` answers at once with `"ready": false` until they are
in, while every other route waits for them; no question or upload ever waits for a model to load
on first use. Routes are plain `def` functions, so the CPU work runs in the thread pool and never
blocks the event loop. Every error, the library's and FastAPI's own, leaves as one body shape:
`{"error": code, "message": what to do}`, except on the OpenAI-compatible /v1 routes, whose errors
take the shape OpenAI's clients parse (`qa.serving.openai_compat`). The MCP server's streamable HTTP
transport answers at /mcp (`qa.serving.mcp`). The same API key guards all three.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Path, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from qa import __version__ as qa_version
from qa.answering.reader import Pair
from qa.config import Settings, get_settings
from qa.encoders.embedding import MODEL_NAME, Embedder, default_embedder
from qa.encoders.microbatch import BatchedEmbedder
from qa.engine import Engine
from qa.errors import (
    Busy,
    IndexMismatch,
    IndexMissing,
    InvalidInput,
    NotFound,
    QAError,
    StoreUnavailable,
)
from qa.llm import event_stream
from qa.records import Message as Turn
from qa.serving import mcp as mcp_server
from qa.serving import openai_compat, sse
from qa.serving.schemas import (
    AskRequest,
    AskResponse,
    DocumentFull,
    DocumentPage,
    DocumentSummary,
    ErrorBody,
    Health,
    Job,
    PassageOut,
    SearchRequest,
    SearchResponse,
    shown_source,
)
from qa.serving.uploads import MAX_FILES, Jobs, TooLarge, UnsupportedType, Upload

log = logging.getLogger(__name__)

JSON_LIMIT = 4_000_000  # bytes; the longest question with a full history, escaped, fits easily

# Most specific first: IndexMissing is a NotFound, TooLarge and UnsupportedType are InvalidInput.
_ERRORS: list[tuple[type[QAError], int, str]] = [
    (openai_compat.ModelNotFound, 404, "model_not_found"),
    (IndexMissing, 503, "index_missing"),
    (StoreUnavailable, 503, "store_unavailable"),
    (TooLarge, 413, "too_large"),
    (UnsupportedType, 415, "unsupported_type"),
    (InvalidInput, 422, "invalid_input"),
    (NotFound, 404, "not_found"),
    (IndexMismatch, 409, "index_mismatch"),
    (Busy, 409, "busy"),
    (QAError, 400, "bad_request"),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_type",
}


def _doc(status: int, text: str) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": text}}


_400 = _doc(400, "A body that cannot be parsed (not UTF-8 JSON, or broken multipart).")
_401 = _doc(401, "No or wrong API key (`Authorization: Bearer <QA_API_KEY>`).")
_404 = _doc(404, "No such document or job.")
_409 = _doc(409, "The index was built by another model, or another writer holds it.")
_413 = _doc(413, "A file over the upload limit, or a request body over its limit.")
_415 = _doc(415, "A file type that cannot be indexed.")
_422 = _doc(422, "Invalid input; the message says which field and why.")
_503 = _doc(503, "No index yet: run `qa index` or upload files with POST /documents.")
_READ = {**_401, **_409, **_422, **_503}
_JSON_BODY = {**_400, **_413, **_READ}


def _body(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    content = ErrorBody(error=error, message=message).model_dump()
    return JSONResponse(content, status_code=status, headers=headers)


def _error(
    path: str,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    """The error body for a request path: OpenAI's shape under /v1, else the service's."""
    if openai_compat.owns(path):
        return openai_compat.error_response(status, code, message, headers, param)
    return _body(status, code, message, headers)


async def _qa_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = next((s, c) for kind, s, c in _ERRORS if isinstance(exc, kind))
    message = _without_server_paths(request, str(exc) or code)
    if isinstance(exc, IndexMissing):
        message += "; or upload files with POST /documents"
    return _error(request.url.path, status, code, message)


def _without_server_paths(request: Request, message: str) -> str:
    """A message as clients see it: the index folder's path on the server reads INDEX_DIR."""
    state = request.app.state
    folders = [str(state.settings.store.index_dir)]
    startup = getattr(state, "startup", None)
    if startup is not None and startup.engine is not None:
        folders.append(str(startup.engine.index_dir))
    for folder in sorted({*folders, *map(os.path.realpath, folders)}, key=len, reverse=True):
        message = message.replace(folder, "INDEX_DIR")
    return message


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    if any(tuple(err.get("loc", ()))[:2] == ("body", "files") for err in errors):
        return _body(
            422,
            "invalid_input",
            "send one or more files as multipart/form-data in the form field `files`, "
            "each with a file name like notes.txt",
        )
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    message = "; ".join(parts) or "invalid request"
    first = ".".join(str(p) for p in errors[0].get("loc", ()) if p != "body") if errors else ""
    return _error(request.url.path, 422, "invalid_input", message, param=first or None)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if status == 404 and message == "Not Found":
        message = f"no route {request.url.path}; see /docs for the endpoints"
    elif status == 400 and message == "There was an error parsing the body":
        wanted = "multipart/form-data" if request.url.path == "/documents" else "UTF-8 JSON"
        message = f"the request body cannot be parsed; send {wanted}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs"
    code = _HTTP_CODES.get(status, "http_error")
    return _error(request.url.path, status, code, message, exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    message = "unexpected error; the server log has the details"
    return _error(request.url.path, 500, "internal", message)


class _BodyLimit:
    """Refuse a request by its Content-Length before its body is read or spooled to disk."""

    def __init__(self, app: ASGIApp, upload_limit: int) -> None:
        self.app, self.upload_limit = app, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            upload = scope["path"] == "/documents"
            limit = self.upload_limit if upload else JSON_LIMIT
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > limit:
                what = f"at most {MAX_FILES} files and " if upload else ""
                message = (
                    f"the request body is {int(length) / 1e6:.1f} MB; "
                    f"send {what}at most {limit / 1e6:.0f} MB in one request"
                )
                await _error(scope["path"], 413, "too_large", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Startup:
    """Loads the service's engine (its models and index) and upload jobs once, in a thread of its
    own, so the server answers `/health` while they load; `wait` blocks until they are in."""

    def __init__(self, load: Callable[[], tuple[Engine, Jobs]], background: bool) -> None:
        self._load = load
        self._done = threading.Event()
        self.engine: Engine | None = None
        self.jobs: Jobs | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="qa-startup", daemon=True)
            self._thread.start()
        else:
            self._run()

    def _run(self) -> None:
        try:
            self.engine, self.jobs = self._load()
        except Exception as exc:  # the service stays up to say why (/health, every route)
            log.exception("the service could not load its models")
            self.error = f"the service could not load its models: {type(exc).__name__}: {exc}"
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self.error is None

    def wait(self) -> tuple[Engine, Jobs]:
        self._done.wait()
        if self.engine is None or self.jobs is None:
            raise StoreUnavailable(self.error or "the service is shutting down")
        return self.engine, self.jobs

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()


# Dependencies: the engine, jobs and settings live on app.state, set by the lifespan handler.


def get_engine(request: Request) -> Engine:
    return request.app.state.startup.wait()[0]


def get_jobs(request: Request) -> Jobs:
    return request.app.state.startup.wait()[1]


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
JobsDep = Annotated[Jobs, Depends(get_jobs)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
_bearer = HTTPBearer(auto_error=False, description="The service's QA_API_KEY, when it has one.")


_KEY_MESSAGE = "missing or wrong API key; send the header `Authorization: Bearer <QA_API_KEY>`"


def _key_matches(settings: Settings, given: str | None) -> bool:
    """Whether a bearer token opens the service: any does when no key is set."""
    if not settings.serving.api_key:
        return True
    return hmac.compare_digest((given or "").encode(), settings.serving.api_key.encode())


def require_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let a request through when no key is set or it carries the right one."""
    if not _key_matches(settings, credentials.credentials if credentials else None):
        raise HTTPException(401, _KEY_MESSAGE, headers={"WWW-Authenticate": "Bearer"})


class _KeyGuard:
    """An ASGI app behind the API key, for what is not a FastAPI route (the MCP transport)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
        if not _key_matches(self.settings, given):
            refused = _body(401, "unauthorized", _KEY_MESSAGE, {"WWW-Authenticate": "Bearer"})
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, background: bool = False
) -> FastAPI:
    """The service over `engine` (default: one on `settings.store.index_dir`), its models and index
    loaded at start-up: before the server answers, or with `background` after it starts to
    answer (`/health` says `ready: false` meanwhile; other routes wait), as `qa serve` does."""
    settings = settings or get_settings()
    # The MCP tools run in worker threads, so they wait for the models as routes do. Without a
    # key, /mcp answers only requests addressed to this machine by name.
    mcp = mcp_server.HttpTransport(
        lambda: app.state.startup.wait()[0], localhost_only=not settings.serving.api_key
    )

    def load() -> tuple[Engine, Jobs]:
        eng = engine or Engine(settings.store.index_dir, _batched(settings), settings=settings)
        _warm_up(eng)
        jobs = Jobs(eng.index_dir, eng.embedder, settings, eng.store)
        jobs.start()
        return eng, jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.startup = startup = await run_in_threadpool(Startup, load, background)
        try:
            async with mcp.running():
                yield
        finally:
            await run_in_threadpool(startup.close)
            eng, jobs = startup.engine, startup.jobs
            if jobs is not None:
                await run_in_threadpool(jobs.close)
            if engine is None and eng is not None:  # made here, so closed here
                eng.close()
                if isinstance(eng.embedder, BatchedEmbedder):
                    eng.embedder.close()

    # /docs and /redoc load Swagger UI and ReDoc from files installed with fastapi-offline
    # (served under /static-offline-docs), never from a CDN: the docs work offline too.
    app = FastAPIOffline(
        title="qa: answers with sources",
        version=qa_version,
        description=(
            "Ask questions over your documents; every answer is made of verbatim quotes, "
            "each with its document and character offsets (`text[start:end] == quote`)."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_exception_handler(QAError, _qa_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    upload_limit = int(settings.serving.max_upload_mb * 1e6) * MAX_FILES + 1_000_000
    app.add_middleware(_BodyLimit, upload_limit=upload_limit)
    if settings.serving.cors_origins:  # added last, so it wraps everything, the 413s above included
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.serving.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(service)
    # The key is part of the schema only when one is set, so /docs shows what a client must send.
    keyed = [Depends(require_key)] if settings.serving.api_key else []
    app.include_router(router, dependencies=keyed)
    app.include_router(openai_compat.router(get_engine, keyed))
    # Starlette runs an endpoint that is not a function as an ASGI app; the annotation of
    # add_route names request handlers only.
    guarded = _KeyGuard(mcp, settings)
    app.add_route("/mcp", guarded, include_in_schema=False)  # type: ignore[arg-type]
    return app


def _batched(settings: Settings) -> Embedder:
    """The bundled embedder; concurrent questions share its calls unless QA_QUERY_BATCH_SIZE=1."""
    embedder = default_embedder()
    if settings.serving.query_batch_size <= 1:
        return embedder
    return BatchedEmbedder(
        embedder, settings.serving.query_batch_size, settings.serving.query_batch_wait_ms / 1000
    )


def _warm_up(engine: Engine) -> None:
    """Load every model the service uses (the encoder's runtimes for questions and for uploads;
    the engine loaded its reader) and the index now, rather than on first use."""
    engine.embedder.warm_up()
    if engine.reader is not None:
        engine.reader.read("warm up?", [Pair("The service warms up.", "warm up")])
    try:
        engine.snapshot()
    except QAError as exc:  # the service still starts; /health and the errors say what to do
        log.warning("%s", exc)


def _health(startup: Startup, settings: Settings) -> Health:
    engine = startup.engine
    if not startup.ready or engine is None:
        return Health(
            ok=False,
            ready=False,
            error=startup.error,
            version=None,
            documents=0,
            chunks=0,
            model=MODEL_NAME,
            embed_backend=settings.encoders.embed_backend,
        )
    try:
        status = engine.status()
    except QAError:
        return Health(
            ok=False,
            ready=True,
            version=None,
            documents=0,
            chunks=0,
            model=engine.embedder.name,
            embed_backend=engine.embedder.backend,
        )
    return Health(
        ok=True,
        ready=True,
        version=status.version,
        documents=status.documents,
        chunks=status.chunks,
        model=status.model,
        embed_backend=engine.embedder.backend,
        index_backend=status.embedding.backend,
    )


# Routes. /health is open; everything on `router` needs the API key when one is set.

service = APIRouter(tags=["service"])
router = APIRouter(responses=_401)
DocId = Annotated[str, Path(description="The document id (its file name or relative path).")]


@service.get("/health", response_model=Health)
def health(request: Request) -> Health:
    """Whether the models are loaded (`ready`) and an index is (`ok`), its version and size;
    answers at once, also while the service starts; needs no API key."""
    return _health(request.app.state.startup, request.app.state.settings)


_ASK_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {event_stream.MEDIA_TYPE: {"schema": sse.EVENT_SCHEMA}},
        "description": "With `stream: true`: `event: token` frames, then one `event: answer` "
        "frame whose data is the AskResponse JSON.",
    }
}


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={**_JSON_BODY, **_ASK_STREAM},
    tags=["answers"],
)
def ask(body: AskRequest, engine: EngineDep) -> Any:
    """Answer a question with verbatim, cited quotes, or abstain when the sources don't say."""
    history: list[Turn] = [{"role": m.role, "content": m.content} for m in body.history]
    filters = body.filters.to_filters() if body.filters else None
    if body.stream:
        events = engine.ask_stream(body.question, history, body.top_k, filters, body.mode)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            sse.frames(events), media_type=event_stream.MEDIA_TYPE, headers=headers
        )
    return AskResponse.of(engine.ask(body.question, history, body.top_k, filters, body.mode))


@router.post("/search", response_model=SearchResponse, responses=_JSON_BODY, tags=["answers"])
def search(body: SearchRequest, engine: EngineDep) -> SearchResponse:
    """Ranked passages for a query, without an answer."""
    filters = body.filters.to_filters() if body.filters else None
    passages = engine.search(body.query, body.top_k, filters)
    return SearchResponse(query=body.query.strip(), passages=[PassageOut.of(p) for p in passages])


@router.get("/documents", response_model=DocumentPage, responses=_READ, tags=["documents"])
def list_documents(
    engine: EngineDep,
    offset: Annotated[int, Query(ge=0, description="Documents to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Documents per page.")] = 50,
) -> DocumentPage:
    """One page of the documents (sorted by id); empty before the first index."""
    docs = [] if engine.store.current_version() is None else engine.documents()
    return DocumentPage(
        total=len(docs),
        offset=offset,
        limit=limit,
        documents=[DocumentSummary.of(d) for d in docs[offset : offset + limit]],
    )


@router.get(
    "/documents/{doc_id:path}",
    response_model=DocumentFull,
    responses={**_READ, **_404},
    tags=["documents"],
)
def get_document(doc_id: DocId, engine: EngineDep) -> DocumentFull:
    """A document's metadata and full text; citation offsets point into `text`."""
    snap = engine.snapshot()
    doc = snap.document(doc_id)
    n_chunks = snap.manifest["documents"][doc_id]["n_chunks"]
    return DocumentFull(
        id=doc.id,
        title=doc.title,
        date=doc.date,
        source=shown_source(doc.source, doc.id),
        n_chunks=n_chunks,
        place=doc.place,
        author=doc.author,
        hash=doc.hash,
        text=doc.text,
    )


@router.delete(
    "/documents/{doc_id:path}",
    status_code=204,
    response_class=Response,
    responses={**_READ, **_404},
    tags=["documents"],
)
def delete_document(doc_id: DocId, engine: EngineDep, jobs: JobsDep) -> Response:
    """Remove a document from the index (and its file, when it was uploaded)."""
    doc = engine.snapshot().document(doc_id)
    jobs.remove(doc.id, doc.source)
    return Response(status_code=204)


@router.post(
    "/documents",
    status_code=202,
    response_model=Job,
    responses={**_400, **_401, **_409, **_413, **_415, **_422},
    tags=["documents"],
    form_limits={"max_files": MAX_FILES, "max_fields": 10},
)
def upload_documents(
    files: Annotated[list[UploadFile], File(description="Files to index.")],
    jobs: JobsDep,
) -> Job:
    """Save files and index them in the background; poll GET /jobs/{id} for progress.

    The document id is the file name: uploading a name again replaces its document. Each file
    is judged on its own: a bad one (empty, too large, a type that cannot be indexed) is
    `failed` in the job with its reason while the rest are indexed; a request with no usable
    file is refused. An accepted upload is on disk before this answers, and is finished after
    a restart.
    """
    return jobs.submit([Upload(f.filename, f.file, f.size) for f in files])


@router.get("/jobs/{job_id}", response_model=Job, responses={**_404, **_422}, tags=["documents"])
def get_job(job_id: str, jobs: JobsDep) -> Job:
    """Progress of an upload (stage, done, total) and what happened to each file; kept across
    restarts for the last 200 uploads."""
    return jobs.get(job_id)
