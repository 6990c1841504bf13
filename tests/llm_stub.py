"""A misbehaving OpenAI-compatible server on loopback: the base URL's first segment picks how.

http://127.0.0.1:PORT/<behaviour>/v1, where behaviour is
- reply-<text>: a correct reply (JSON, or SSE when streaming) whose content is <text> (URL-quoted)
- cut-<text>: streams <text> as one chunk, then a second chunk that the stream ends inside
  (no blank line after it), then closes
- garbage: HTTP 200 with a body that is not JSON
- error: HTTP 500
- slow: waits STALL_S (60 s) before answering, or until the server stops
- trickle: streams one SSE comment line every 0.2 s for STALL_S, never a token

Both stall far longer than any deadline a test sets, so a test can tell "cut off at the deadline"
from "waited for the server" with a margin no busy machine eats.

`Scripted` is the in-process counterpart: a Generator that replies with a fixed text.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from qa.llm.client import Generator
from qa.records import Message

# The tests' own corpus (tests/data/corpus): a question on its main article, and a sentence
# that article supports word for word (a line of its own, however long).
LOAN_Q = "How much did the Northern Development Bank lend for the Kestrel Ridge wind farm?"
TRUE = "The Northern Development Bank approved an €840 million loan to build the Kestrel Ridge wind farm"  # noqa: E501
STALL_S = 60.0


class Scripted(Generator):
    """Replies with a fixed text (word by word when streaming) and records what it was asked."""

    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.asked: list[Sequence[Message]] = []

    def complete(self, messages, stream=False):
        self.asked.append(messages)
        return iter(re.findall(r"\S+\s*", self.reply)) if stream else self.reply


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append((self.path, body, dict(self.headers)))  # type: ignore[attr-defined]
        behaviour = self.path.split("/")[1]
        try:
            if behaviour.startswith("reply-"):
                self._reply(unquote(behaviour[6:]), bool(body.get("stream")))
            elif behaviour.startswith("cut-"):
                self._start(200, "text/event-stream")
                for word in (unquote(behaviour[4:]), " and the rest"):
                    piece = {"choices": [{"index": 0, "delta": {"content": word}}]}
                    self.wfile.write(f"data: {json.dumps(piece)}\n".encode())
                    self.wfile.write(b"\n" if word != " and the rest" else b"")
            elif behaviour == "garbage":
                self._send(200, b"<html>surely not JSON</html>", "text/html")
            elif behaviour == "error":
                self._send(500, b'{"error": "model exploded"}', "application/json")
            elif behaviour == "slow":
                self.server.closing.wait(STALL_S)  # type: ignore[attr-defined]
                self._reply("Too late [1].", False)
            elif behaviour == "trickle":
                self._start(200, "text/event-stream")
                for _ in range(int(STALL_S / 0.2)):
                    self.wfile.write(b": still thinking\n\n")
                    self.wfile.flush()
                    if self.server.closing.wait(0.2):  # type: ignore[attr-defined]
                        break
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _reply(self, text: str, stream: bool) -> None:
        if not stream:
            reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
            self._send(200, json.dumps(reply).encode(), "application/json")
            return
        self._start(200, "text/event-stream")
        for word in text.split(" "):
            piece = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
            self.wfile.write(f"data: {json.dumps(piece)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def _start(self, status: int, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.end_headers()

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self._start(status, kind)
        self.wfile.write(body)


@contextmanager
def stub_server() -> Iterator[tuple[str, list]]:
    """Yields the root URL (http://127.0.0.1:PORT) and the list of requests received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.requests = []  # type: ignore[attr-defined]
    server.closing = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    finally:
        server.closing.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
