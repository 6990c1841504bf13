"""Server-sent events for streamed answers: `event: token` frames, then one `event: answer`.

`POST /ask` with `"stream": true` returns `text/event-stream`:

    event: token
    data: {"text": " The"}

    event: answer
    data: {...the AskResponse JSON...}

Tokens are the model's raw, unverified words, for display while waiting; the `answer` event holds
the verified answer and replaces them (sentences the check removed disappear then). Reading such
a stream (the UI, an LLM's reply) is `qa.llm.event_stream.events`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator

from qa.records import Answer, Final, Token

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
    from qa.serving.schemas import AskResponse

    return AskResponse.of(answer).model_dump_json()


def frames(
    events: Iterable[Token | Final], render: Callable[[Answer], str] = ask_response_json
) -> Iterator[str]:
    """SSE frames for a stream of answer events: hand this to a `StreamingResponse`."""
    for event in events:
        if isinstance(event, Token):
            yield frame("token", json.dumps({"text": event.text}, ensure_ascii=False))
        else:
            yield frame("answer", render(event.answer))
