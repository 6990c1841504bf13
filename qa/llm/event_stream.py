"""Reading a server-sent event stream (`text/event-stream`) by the spec: an LLM's streamed
reply, and the service's streamed answers as the UI reads them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
from httpx_sse import EventSource, ServerSentEvent

MEDIA_TYPE = "text/event-stream"


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
