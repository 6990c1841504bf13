"""The HTTP service: the Engine behind FastAPI routes, with OpenAPI docs at /docs and /redoc.

The model and the index load once, in the lifespan handler; routes are plain `def` functions, so
the CPU work runs in the thread pool and never blocks the event loop. Every error, the library's
and FastAPI's own, leaves as one body shape: `{"error": code, "message": what to do}`.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import AsyncIterator
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
from qa import sse
from qa.config import Settings, get_settings
from qa.embedding import Embedder, default_embedder
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
from qa.microbatch import BatchedEmbedder
from qa.schemas import (
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
from qa.uploads import MAX_FILES, Jobs, TooLarge, UnsupportedType, Upload

log = logging.getLogger(__name__)

JSON_LIMIT = 4_000_000  # bytes; the longest question with a full history, escaped, fits easily

# Most specific first: IndexMissing is a NotFound, TooLarge and UnsupportedType are InvalidInput.
_ERRORS: list[tuple[type[QAError], int, str]] = [
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


def _body(status: int, error: str, message: str, headers: dict | None = None) -> JSONResponse:
    content = ErrorBody(error=error, message=message).model_dump()
    return JSONResponse(content, status_code=status, headers=headers)


async def _qa_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = next((s, c) for kind, s, c in _ERRORS if isinstance(exc, kind))
    message = _without_server_paths(request, str(exc) or code)
    if isinstance(exc, IndexMissing):
        message += "; or upload files with POST /documents"
    return _body(status, code, message)


def _without_server_paths(request: Request, message: str) -> str:
    """A message as clients see it: the index folder's path on the server reads INDEX_DIR."""
    state = request.app.state
    folders = [str(state.settings.index_dir)]
    if getattr(state, "engine", None) is not None:
        folders.append(str(state.engine.index_dir))
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
    return _body(422, "invalid_input", "; ".join(parts) or "invalid request")


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
    return _body(status, _HTTP_CODES.get(status, "http_error"), message, exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _body(500, "internal", "unexpected error; the server log has the details")


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
                await _body(413, "too_large", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# Dependencies: the engine, jobs and settings live on app.state, set by the lifespan handler.


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
JobsDep = Annotated[Jobs, Depends(get_jobs)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
_bearer = HTTPBearer(auto_error=False, description="The service's QA_API_KEY, when it has one.")


def require_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let a request through when no key is set or it carries the right one."""
    if not settings.api_key:
        return
    given = credentials.credentials.encode() if credentials else b""
    if not hmac.compare_digest(given, settings.api_key.encode()):
        raise HTTPException(
            401,
            "missing or wrong API key; send the header `Authorization: Bearer <QA_API_KEY>`",
            headers={"WWW-Authenticate": "Bearer"},
        )


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The service over `engine` (default: one on `settings.index_dir`, loaded at start-up)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        eng = engine or Engine(settings.index_dir, _batched(settings), settings=settings)
        await run_in_threadpool(_warm_up, eng)
        jobs = Jobs(eng.index_dir, eng.embedder, settings, eng.store)
        jobs.start()
        app.state.engine, app.state.jobs = eng, jobs
        try:
            yield
        finally:
            await run_in_threadpool(jobs.close)
            if engine is None:  # made here, so closed here
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
    upload_limit = int(settings.max_upload_mb * 1e6) * MAX_FILES + 1_000_000
    app.add_middleware(_BodyLimit, upload_limit=upload_limit)
    if settings.cors_origins:  # added last, so it wraps everything, the 413s above included
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(service)
    # The key is part of the schema only when one is set, so /docs shows what a client must send.
    app.include_router(router, dependencies=[Depends(require_key)] if settings.api_key else [])
    return app


def _batched(settings: Settings) -> Embedder:
    """The bundled embedder; concurrent questions share its calls unless QA_QUERY_BATCH_SIZE=1."""
    embedder = default_embedder()
    if settings.query_batch_size <= 1:
        return embedder
    return BatchedEmbedder(embedder, settings.query_batch_size, settings.query_batch_wait_ms / 1000)


def _warm_up(engine: Engine) -> None:
    """Load the model and the index now rather than on the first question."""
    engine.embedder.embed_query("warm up")
    try:
        engine.snapshot()
    except QAError as exc:  # the service still starts; /health and the errors say what to do
        log.warning("%s", exc)


def _health(engine: Engine) -> Health:
    try:
        status = engine.status()
    except QAError:
        return Health(
            ok=False,
            version=None,
            documents=0,
            chunks=0,
            model=engine.embedder.name,
            embed_backend=engine.embedder.backend,
        )
    return Health(
        ok=True,
        version=status["version"],
        documents=status["documents"],
        chunks=status["chunks"],
        model=status["model"],
        embed_backend=engine.embedder.backend,
        index_backend=status["embedding"]["backend"],
    )


# Routes. /health is open; everything on `router` needs the API key when one is set.

service = APIRouter(tags=["service"])
router = APIRouter(responses=_401)
DocId = Annotated[str, Path(description="The document id (its file name or relative path).")]


@service.get("/health", response_model=Health)
def health(engine: EngineDep) -> Health:
    """Whether an index is loaded, its version and size; needs no API key."""
    return _health(engine)


_ASK_STREAM = {
    200: {
        "content": {sse.MEDIA_TYPE: {"schema": sse.EVENT_SCHEMA}},
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
    history = [{"role": m.role, "content": m.content} for m in body.history]
    filters = body.filters.to_filters() if body.filters else None
    if body.stream:
        events = engine.ask_stream(body.question, history, body.top_k, filters, body.mode)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(sse.frames(events), media_type=sse.MEDIA_TYPE, headers=headers)
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
