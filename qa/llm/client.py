"""Answer generators: one method to implement (`complete`), and any OpenAI-compatible endpoint.

A llama.cpp server, Ollama, vLLM or a hosted API all speak `POST {url}/chat/completions`. The
HTTP exchange runs in a worker thread and the caller waits at most `timeout_s` in total, so a
slow or stalled server can never hang an answer: past the deadline it gets `LLMTimeout`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
from httpx_sse import SSEError

from qa.config import Settings, get_settings
from qa.llm import event_stream
from qa.records import Message


class LLMError(Exception):
    """The model could not give an answer: unreachable, refused, or replied with garbage."""


class LLMTimeout(LLMError):
    """The model did not finish within the time allowed."""


class Generator:
    """Writes a reply to chat messages; subclasses implement `complete`."""

    name: str = "generator"

    def complete(self, messages: Sequence[Message], stream: bool = False) -> str | Iterator[str]:
        """The reply as one string, or (stream=True) as an iterator of text pieces.

        Raises LLMError (or LLMTimeout) when no reply can be had.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Let go of connections and the like; the generator is not used after this."""

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reply_text(generator: Generator, messages: Sequence[Message]) -> str:
    """The whole reply as one string, whatever `complete` returned."""
    out = generator.complete(messages)
    return out if isinstance(out, str) else "".join(out)


def reply_pieces(generator: Generator, messages: Sequence[Message]) -> Iterator[str]:
    """The reply piece by piece, whatever `complete` returned."""
    out = generator.complete(messages, stream=True)
    return iter([out]) if isinstance(out, str) else out


class OpenAICompatible(Generator):
    """`POST {url}/chat/completions` on any OpenAI-compatible server, streaming or not.

    One HTTP client (a pool of kept-alive connections) serves every call; `close` ends it.
    """

    def __init__(
        self,
        url: str,
        model: str = "default",
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_tokens: int = 300,
        temperature: float = 0.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.name = model  # shown in answers' notes: never the URL, which may be internal
        # Per-operation limits as well, so a worker thread itself ends soon after its deadline.
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers)

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: Sequence[Message], stream: bool = False) -> str | Iterator[str]:
        body = {
            "model": self.model,
            "messages": list(messages),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        }
        deadline = time.monotonic() + self.timeout_s
        pieces = _within(deadline, lambda stop: self._exchange(body, stream, stop), self.timeout_s)
        return pieces if stream else "".join(pieces)

    def _exchange(self, body: dict[str, Any], stream: bool, stop: threading.Event) -> Iterator[str]:
        """The blocking HTTP exchange (run in a worker thread by `_within`, which sets `stop`
        when the caller has given up)."""
        url = f"{self.url}/chat/completions"
        try:
            with self._http.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    detail = response.read().decode("utf-8", "replace")[:200]
                    raise LLMError(f"{url} answered HTTP {response.status_code}: {detail}")
                if stream:
                    yield from _stream_pieces(response, stop)
                else:
                    raw = bytearray()
                    for chunk in response.iter_bytes():
                        if stop.is_set():
                            return
                        raw += chunk
                    yield _message_text(_json(bytes(raw)))
        except httpx.TimeoutException as exc:
            raise LLMTimeout(f"{url} did not answer within {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"{url} is unreachable: {exc}") from exc


def generator_from_settings(settings: Settings | None = None) -> Generator | None:
    """The configured generator, or None when QA_LLM_URL is unset (answers stay extractive)."""
    settings = settings or get_settings()
    if not settings.llm.url:
        return None
    return OpenAICompatible(
        settings.llm.url,
        model=settings.llm.model,
        api_key=settings.llm.api_key,
        timeout_s=settings.llm.timeout_s,
        max_tokens=settings.llm.max_answer_tokens,
    )


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise LLMError(f"the model replied with something that is not JSON: {raw[:120]!r}") from exc


def _message_text(reply: Any) -> str:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"the model's reply has no choices[0].message: {str(reply)[:120]}") from exc
    if not isinstance(content, str):
        raise LLMError("the model's reply has no text")
    return content


def _stream_pieces(response: httpx.Response, stop: threading.Event) -> Iterator[str]:
    """Text pieces from an OpenAI streaming reply (`data: {...}` events, `data: [DONE]` last);
    reading stops as soon as `stop` is set (the caller gave up: close the connection)."""
    try:
        for event in event_stream.events(response, stop):
            data = event.data.strip()
            if not data:
                continue
            if data == "[DONE]":
                return
            piece = _delta_text(data)
            if piece:
                yield piece
    except SSEError as exc:
        raise LLMError(f"the model's streamed reply is not an event stream: {exc}") from exc


def _delta_text(data: str) -> str | None:
    """The text of one streamed chunk, None when it has none (a role or a finish reason)."""
    chunk = _json(data.encode())
    if isinstance(chunk, dict) and "error" in chunk:
        raise LLMError(f"the model stopped with an error: {str(chunk['error'])[:200]}")
    try:
        delta = chunk["choices"][0].get("delta") or {}
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMError(f"unexpected stream chunk: {data[:120]}") from exc
    return delta.get("content")


_DONE = object()


def _within(
    deadline: float, work: Callable[[threading.Event], Iterator[str]], timeout_s: float
) -> Iterator[str]:
    """Run `work` in a daemon thread; yield its pieces, raising LLMTimeout at the deadline.

    httpx's timeouts are per read, so a server that trickles a byte every few seconds would
    never trip them: only a wall-clock deadline bounds the whole answer.
    """
    pieces: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def run() -> None:
        try:
            for piece in work(stop):
                if stop.is_set():
                    return
                pieces.put(piece)
            pieces.put(_DONE)
        except BaseException as exc:  # handed to the caller's thread
            pieces.put(exc)

    threading.Thread(target=run, name="llm-request", daemon=True).start()
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = pieces.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise LLMTimeout(f"the model did not finish within {timeout_s:g} s") from None
            if item is _DONE:
                return
            if isinstance(item, LLMError):
                raise item
            if isinstance(item, BaseException):
                raise LLMError(f"the model request failed: {item!r}") from item
            yield item
    finally:
        stop.set()
