"""Server-sent events for streamed answers: `event: token` frames, then one `event: answer`.

`POST /ask` with `"stream": true` returns `text/event-stream`:

    event: token
    data: {"text": " The"}

    event: answer
    data: {...the AskResponse JSON...}

Tokens are the model's raw, unverified words, for display while waiting; the `answer` event holds
the verified answer and replaces them (sentences the check removed disappear then).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import httpx
from httpx_sse import EventSource, ServerSentEvent

from qa.models import Answer

if TYPE_CHECKING:
    from qa.generation import Final, Token

MEDIA_TYPE = "text/event-stream"
# One event of the stream, for the OpenAPI document (data: JSON text, see the module docstring).
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["token", "answer"]},
        "data": {"type": "string", "description": 'token: {"text": ...}; answer: AskResponse'},
    },
    "required": ["event", "data"],
}


def frame(event: str, data: str) -> str:
    """One SSE frame; a multi-line payload becomes several `data:` lines, as the spec requires."""
    lines = "".join(f"data: {line}\n" for line in re.split(r"\r\n|\r|\n", data))
    return f"event: {event}\n{lines}\n"


def ask_response_json(answer: Answer) -> str:
    """The HTTP /ask body for an answer."""
    from qa.schemas import AskResponse

    return AskResponse.of(answer).model_dump_json()


def frames(
    events: Iterable[Token | Final], render: Callable[[Answer], str] = ask_response_json
) -> Iterator[str]:
    """SSE frames for a stream of answer events: hand this to a `StreamingResponse`."""
    from qa.generation import Token  # here: qa.llm reads streams with this module

    for event in events:
        if isinstance(event, Token):
            yield frame("token", json.dumps({"text": event.text}, ensure_ascii=False))
        else:
            yield frame("answer", render(event.answer))


def events(
    response: httpx.Response, stop: threading.Event | None = None
) -> Iterator[ServerSentEvent]:
    """The events of a `text/event-stream` response, read by the spec (httpx-sse): lines end at
    CR, LF or CRLF only, an event ends at a blank line, and one cut off by the end of the stream
    is dropped. With `stop`, reading ends at the next piece of the body after it is set, even
    when that piece is only a comment (a keep-alive), so a reader that was given up stops soon.
    Raises httpx_sse.SSEError when the response is not an event stream."""
    if stop is not None:
        response.stream = _Until(response.stream, stop)  # type: ignore[arg-type]
    return EventSource(response).iter_sse()


class _Until(httpx.SyncByteStream):
    """A response body that ends early once `stop` is set."""

    def __init__(self, body: httpx.SyncByteStream, stop: threading.Event) -> None:
        self.body, self.stop = body, stop

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.body:
            if self.stop.is_set():
                return
            yield piece

    def close(self) -> None:
        self.body.close()
