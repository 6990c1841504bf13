"""The OpenAI chat-completions protocol over the engine: `GET /v1/models`, `POST
/v1/chat/completions` (plain or streamed), for chat front ends and scripts that speak it.

The last user message is the question and the earlier turns its history, as `POST /ask` takes
them. The reply's text carries the `[n]` markers and `message.citations` the same objects as
/ask's (with `confidence`/`confident` when /ask's answer has them). A stream never shows the LLM's
unchecked words: its chunks hold the verified answer only. Errors leave in the shape OpenAI
clients parse, `{"error": {"message", "type", "code", "param"}}`, not the service's own.
"""

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from qa.config import MAX_TOP_K
from qa.engine import Engine
from qa.errors import InvalidInput, NotFound
from qa.llm.generation import Final, Token
from qa.records import Answer
from qa.records import Message as Turn
from qa.serving.schemas import MAX_HISTORY, TOP_K_DOC, AskResponse, CitationOut, FiltersIn

log = logging.getLogger(__name__)

PREFIX = "/v1"
MODES = {"qa-extractive": "extractive", "qa-llm": "llm"}  # model id -> answering mode
# Fields of the /ask answer that travel with the reply's message, when the answer has them.
ANSWER_EXTRAS = ("confidence", "confident", "tier")
MAX_MESSAGES = 1000
MEDIA_TYPE = "text/event-stream"


def owns(path: str) -> bool:
    """Whether a request path belongs to this protocol (and so gets its error shape)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


# Errors


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong and what to do about it.")
    type: str = Field(description="invalid_request_error, or server_error for a 5xx.")
    code: str | None = Field(description="A machine-readable code, e.g. invalid_api_key.")
    param: str | None = Field(None, description="The request field at fault, when one is.")


class ErrorBody(BaseModel):
    """Every error of the /v1 routes has this shape (OpenAI's)."""

    error: ErrorDetail


# The service's codes where OpenAI's clients know another name.
_CODES = {"unauthorized": "invalid_api_key"}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    """An error as OpenAI's API sends it: invalid input is a 400 there, not a 422."""
    status = 400 if status == 422 else status
    kind = "server_error" if status >= 500 else "invalid_request_error"
    detail = ErrorDetail(message=message, type=kind, code=_CODES.get(code, code), param=param)
    return JSONResponse(ErrorBody(error=detail).model_dump(), status_code=status, headers=headers)


class ModelNotFound(NotFound):
    """A model id that names no answering mode."""


# Requests


class TextPart(BaseModel):
    """A piece of a message's content; parts other than text are ignored."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    """One message of the conversation; system, developer and tool messages are ignored."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """OpenAI's chat-completions body; its sampling fields (temperature, max_tokens, ...) are
    accepted and ignored. `top_k` and `filters` are qa's own (send them as extra body fields)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="qa-extractive, or qa-llm when the service has an LLM.")
    messages: list[Message] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        description=f"The conversation; the last message is the user's question. The last "
        f"{MAX_HISTORY} turns before it are its history.",
    )
    stream: StrictBool = Field(
        False,
        description="Stream `chat.completion.chunk` events, then `data: [DONE]`.",
    )
    top_k: StrictInt | None = Field(None, ge=1, le=MAX_TOP_K, description=TOP_K_DOC)
    filters: FiltersIn | None = None


# Replies


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "qa"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class ReplyMessage(BaseModel):
    """The answer: its text with `[n]` markers, and the quotes they point to."""

    model_config = ConfigDict(extra="allow")  # confidence, confident (when /ask has them)
    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[CitationOut] = Field(
        description="The same objects as /ask's: document.text[start:end] == quote."
    )


class Choice(BaseModel):
    index: int = 0
    message: ReplyMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]


def models(engine: Engine) -> ModelList:
    """One model id per answering mode this engine has."""
    ids = [m for m, mode in MODES.items() if mode != "llm" or engine.generator is not None]
    return ModelList(data=[Model(id=i) for i in ids])


def mode_of(model: str, engine: Engine) -> str:
    """The answering mode a model id names; an unknown id is a 404, as OpenAI's API has it."""
    known = [m.id for m in models(engine).data]
    if model not in known:
        raise ModelNotFound(
            f"no model {model!r}; this service has {', '.join(known)} (GET /v1/models)"
        )
    return MODES[model]


def question_and_history(messages: list[Message]) -> tuple[str, list[Turn]]:
    """The last message (the user's) is the question; the user and assistant turns before it,
    the last MAX_HISTORY of them, are its history."""
    *earlier, last = messages
    if last.role != "user":
        raise InvalidInput(
            f"the last message must be the user's question, not a {last.role!r} message"
        )
    turns: list[Turn] = [
        {"role": m.role, "content": m.text()}
        for m in earlier
        if m.role in ("user", "assistant") and m.text().strip()
    ]
    return last.text(), turns[-MAX_HISTORY:]


def message_fields(answer: Answer) -> dict[str, Any]:
    """What the reply's message carries: the /ask answer's text and citations (and its
    confidence, when it has one), as /ask renders them."""
    ask = AskResponse.of(answer).model_dump(mode="json")
    fields = {"content": ask["answer"], "citations": ask["citations"]}
    return fields | {k: ask[k] for k in ANSWER_EXTRAS if k in ask}


def completion(answer: Answer, model: str) -> ChatCompletion:
    return ChatCompletion(
        id=_new_id(),
        created=int(time.time()),
        model=model,
        choices=[Choice(message=ReplyMessage(**message_fields(answer)))],
    )


def chunks(events: Iterable[Token | Final], model: str) -> Iterator[str]:
    """The `data:` frames of a streamed reply: the role, then the verified answer with its
    citations (the LLM's raw tokens are never sent: they are unchecked), then `stop` and
    `[DONE]`. An error after the stream began leaves as an `error` frame, as OpenAI's does."""
    head = {
        "id": _new_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def frame(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps(head | {'choices': [choice]}, ensure_ascii=False)}\n\n"

    yield frame({"role": "assistant", "content": ""})
    try:
        final = next(e for e in events if isinstance(e, Final))
    except Exception:  # the engine promises not to raise; a stream must end cleanly anyway
        log.exception("a streamed answer failed")
        message = "unexpected error; the server log has the details"
        error = {"message": message, "type": "server_error", "code": "internal"}
        yield f"data: {json.dumps({'error': error})}\n\n"
        return
    yield frame(message_fields(final.answer))
    yield frame({}, "stop")
    yield "data: [DONE]\n\n"


def _new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _doc(status: int, text: str) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": text}}


_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        "description": "With `stream: true`: `data: {chat.completion.chunk}` frames, then "
        "`data: [DONE]`.",
    }
}
_ERRORS = {
    **_doc(400, "Invalid input (an empty message list, a last message not the user's, ...)."),
    **_doc(401, "No or wrong API key (`Authorization: Bearer <QA_API_KEY>`)."),
    **_doc(404, "No such model (GET /v1/models lists them)."),
    **_doc(409, "The index was built by another model, or another writer holds it."),
    **_doc(413, "A request body over its limit."),
    **_doc(503, "No index yet: run `qa index` or upload files with POST /documents."),
}


def router(engine_dep: Callable[..., Engine], dependencies: list[Any]) -> APIRouter:
    """The /v1 routes, over the engine that `engine_dep` gives, behind `dependencies`."""
    api = APIRouter(prefix=PREFIX, tags=["openai"], dependencies=dependencies)
    EngineDep = Annotated[Engine, Depends(engine_dep)]

    @api.get("/models", response_model=ModelList, responses={401: _ERRORS[401]})
    def list_models(engine: EngineDep) -> ModelList:
        """The model ids, one per answering mode: qa-extractive, and qa-llm with QA_LLM_URL."""
        return models(engine)

    @api.post(
        "/chat/completions",
        response_model=ChatCompletion,
        responses={**_ERRORS, **_STREAM},
    )
    def chat_completions(body: ChatRequest, engine: EngineDep) -> Any:
        """The answer to the last user message, with `message.citations` (OpenAI's protocol)."""
        mode = mode_of(body.model, engine)
        question, history = question_and_history(body.messages)
        filters = body.filters.to_filters() if body.filters else None
        if body.stream:
            events = engine.ask_stream(question, history, body.top_k, filters, mode)
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(
                chunks(events, body.model), media_type=MEDIA_TYPE, headers=headers
            )
        answer = engine.ask(question, history, body.top_k, filters, mode)
        return completion(answer, body.model)

    return api
