"""The UI's only way to the service: one small httpx client over the JSON API of `qa serve`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from qa.llm import event_stream
from qa.serving.schemas import AskResponse, DocumentFull, DocumentPage, Health, Job

CONNECT_TIMEOUT = 3.0
T = TypeVar("T", bound=BaseModel)
READ_TIMEOUT = 120.0  # the first question after a start can wait for the model to load
# What `ask_stream` yields: ("token", raw model text) items, then one ("answer", AskResponse).
StreamEvent = tuple[Literal["token"], str] | tuple[Literal["answer"], AskResponse]


class ServiceError(Exception):
    """The service answered with an error, or not at all; the message says what to do."""

    def __init__(self, message: str, code: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class Unreachable(ServiceError):
    """Nothing answers at the service's URL."""


class Client:
    """The HTTP API of the qa service, returning its schema records."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # When set, `ask` streams and hands it each of the model's raw, unverified text pieces.
        self.on_token = on_token
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def health(self) -> Health:
        return _parse(Health, self._call("GET", "/health"))

    def ask(self, question: str, history: Sequence[dict], top_k: int) -> AskResponse:
        """The verified answer; streamed through `ask_stream` when `on_token` is set, which then
        sees the model's draft as it arrives (LLM mode only; without a model there is none)."""
        if self.on_token is not None:
            for kind, value in self.ask_stream(question, history, top_k):
                if kind == "token":
                    self.on_token(value)
                else:
                    return value
        body = {"question": question, "history": list(history), "top_k": top_k}
        return _parse(AskResponse, self._call("POST", "/ask", json=body))

    def ask_stream(
        self, question: str, history: Sequence[dict], top_k: int
    ) -> Iterator[StreamEvent]:
        """`ask` as server-sent events: ("token", text) while the model writes, then
        ("answer", AskResponse), the verified answer that replaces the tokens. Without a model
        configured there is only the answer. Errors raise ServiceError, as `ask` does."""
        body = {"question": question, "history": list(history), "top_k": top_k, "stream": True}
        started = False
        try:
            with self._http.stream("POST", "/ask", json=body) as response:
                started = True
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                if not response.headers.get("content-type", "").startswith(event_stream.MEDIA_TYPE):
                    # A service that answers in one piece (JSON) is still an answer.
                    response.read()
                    yield "answer", _parse(AskResponse, self._json(response, "/ask"))
                    return
                for event in event_stream.events(response):  # a cut-off last event is dropped
                    if event.event == "token":
                        yield "token", _token_text(event.data)
                    elif event.event == "answer":
                        yield "answer", _parse(AskResponse, _loads(event.data))
                        return
        except httpx.TransportError as exc:
            if started and not isinstance(exc, httpx.TimeoutException):
                raise Unreachable(
                    f"The qa service at {self.base_url} broke off its answer "
                    f"({exc.__class__.__name__}); it may have stopped: try again, or see its log.",
                    "unreachable",
                ) from exc
            raise self._unreachable(exc) from exc
        raise ServiceError(
            "The answer stream ended before the answer; the service may have stopped: "
            "try again, or see its log.",
            "bad_response",
        )

    def documents(self, offset: int = 0, limit: int = 1000) -> DocumentPage:
        params = {"offset": offset, "limit": limit}
        return _parse(DocumentPage, self._call("GET", "/documents", params=params))

    def all_documents(self) -> DocumentPage:
        """Every document, fetched page by page."""
        page = self.documents()
        docs = list(page.documents)
        while len(docs) < page.total and page.documents:
            page = self.documents(offset=len(docs))
            docs += page.documents
        return DocumentPage(total=len(docs), offset=0, limit=len(docs), documents=docs)

    def document(self, doc_id: str) -> DocumentFull:
        return _parse(DocumentFull, self._call("GET", f"/documents/{quote(doc_id, safe='/')}"))

    def delete(self, doc_id: str) -> None:
        self._call("DELETE", f"/documents/{quote(doc_id, safe='/')}")

    def upload(self, files: Sequence[tuple[str, bytes, str | None]]) -> Job:
        """Send (filename, content, mime type) files to be indexed; returns the queued job."""
        octet = "application/octet-stream"
        parts = [("files", (name, data, mime or octet)) for name, data, mime in files]
        return _parse(Job, self._call("POST", "/documents", files=parts))

    def job(self, job_id: str) -> Job:
        return _parse(Job, self._call("GET", f"/jobs/{job_id}"))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        return self._json(response, path)

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceError(
                f"{self.base_url}{path} did not answer with JSON; is QA_API_URL the qa service?",
                "bad_response",
                response.status_code,
            ) from exc

    def _unreachable(self, exc: httpx.TransportError) -> Unreachable:
        """A timeout or a failed connection, with what to do about it."""
        if isinstance(exc, httpx.TimeoutException):
            return Unreachable(
                f"The qa service at {self.base_url} did not answer in time "
                f"({exc.__class__.__name__}); it may be busy: try again, or see its log.",
                "timeout",
            )
        return Unreachable(
            f"Cannot reach the qa service at {self.base_url}: start it with `qa serve` "
            "(or `qa up`, or `make run`), or set QA_API_URL to where it runs.",
            "unreachable",
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error(response: httpx.Response) -> ServiceError:
    """The service's `{"error", "message"}` body as an exception, with a hint for common codes."""
    try:
        body = response.json()
        code, message = str(body["error"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:300] or response.reason_phrase
    if response.status_code == 401:
        message += " (set QA_API_KEY for the UI to the service's key)"
    return ServiceError(message, code, response.status_code)


def _loads(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ServiceError(
            "the service sent an event that is not JSON; are the UI and the service the same "
            "version?",
            "bad_response",
        ) from exc


def _token_text(data: str) -> str:
    body = _loads(data)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise ServiceError(
            "the service sent a token event in an unexpected shape; are the UI and the service "
            "the same version?",
            "bad_response",
        )
    return body["text"]


def _parse(model: type[T], data: Any) -> T:
    """Check a response against the schema; a mismatch means the UI and service versions differ."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ServiceError(
            f"the service answered in an unexpected shape ({exc.error_count()} errors); "
            "are the UI and the service the same version?",
            "bad_response",
        ) from exc
