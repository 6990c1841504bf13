"""Generated answers: an LLM writes from numbered passages, and every sentence is verified.

The order of trust: the extractive support check decides first whether the passages answer the
question at all (when they don't, the model is not asked: the answer abstains whatever it would
say). Then the model writes; each of its sentences must be supported by a quote of a passage it
cites (`qa.llm.verify`), or it is removed. Citations are those quotes, verbatim, renumbered.
When the model is unreachable, slow or replies with garbage, the extractive answer is returned
with a note.
Nothing here raises to the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from qa.answering import extractive as answering
from qa.config import LLM_MAX_PROMPT_TOKENS
from qa.encoders.embedding import Embedder
from qa.language.question import Question
from qa.llm.client import Generator, LLMError, reply_pieces, reply_text
from qa.llm.prompt import build_prompt
from qa.llm.verify import Check, split_claims, verify
from qa.records import Answer, Final, Message, Passage, Token

log = logging.getLogger(__name__)

SHOWN_REMOVED = 3  # removed sentences quoted in the notes, at most
ON_ALL_REMOVED = ("abstain", "extractive")


def answer_with_llm(
    question: Question,
    passages: Sequence[Passage],
    idf: answering.Idf,
    generator: Generator,
    embedder: Embedder,
    max_prompt_tokens: int = LLM_MAX_PROMPT_TOKENS,
    min_coverage: float | None = None,
    on_all_removed: str = "abstain",
    on_checks: Callable[[Sequence[Check]], None] | None = None,
) -> Answer:
    """A generated answer whose every sentence is backed by a verbatim quote, or an abstention.

    `on_all_removed`: when every generated sentence fails verification, "abstain" (default) or
    fall back to the "extractive" answer. `on_checks` sees each sentence's check (for eval).
    """
    events = stream_answer_with_llm(
        question,
        passages,
        idf,
        Whole(generator),
        embedder,
        max_prompt_tokens=max_prompt_tokens,
        min_coverage=min_coverage,
        on_all_removed=on_all_removed,
        on_checks=on_checks,
    )
    return final_answer(events)


def final_answer(events: Iterable[Token | Final]) -> Answer:
    """The answer of a stream of events: its `Final` one (the tokens before it are dropped)."""
    return next(e.answer for e in events if isinstance(e, Final))


class Whole(Generator):
    """Asks for the reply in one piece (no streaming needed when nobody watches)."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.name = inner.name

    def complete(self, messages: Sequence[Message], stream: bool = False) -> str:
        return reply_text(self.inner, messages)


def stream_answer_with_llm(
    question: Question,
    passages: Sequence[Passage],
    idf: answering.Idf,
    generator: Generator,
    embedder: Embedder,
    max_prompt_tokens: int = LLM_MAX_PROMPT_TOKENS,
    min_coverage: float | None = None,
    on_all_removed: str = "abstain",
    on_checks: Callable[[Sequence[Check]], None] | None = None,
) -> Iterator[Token | Final]:
    """`Token` events as the model writes, then one `Final` with the verified answer."""
    if on_all_removed not in ON_ALL_REMOVED:
        raise ValueError(f"on_all_removed must be one of {ON_ALL_REMOVED}")
    extractive = answering.answer(question, passages, idf, min_coverage)
    if extractive.abstained:
        not_asked = (
            "The model was not asked: the passages don't cover the question (support check)."
        )
        yield Final(replace(extractive, mode="llm", notes=[*extractive.notes, not_asked]))
        return
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        prompt = build_prompt(question, passages, max_prompt_tokens)
        if not prompt.sources:
            raise LLMError(f"the prompt budget of {max_prompt_tokens} tokens leaves no room")
        pieces = []
        for piece in reply_pieces(generator, prompt.messages):
            pieces.append(piece)
            yield Token(piece)
        reply = "".join(pieces)
        t1 = time.perf_counter()
        timings["generate"] = (t1 - t0) * 1e3
        claims = split_claims(reply, len(prompt.sources))
        if not claims:
            raise LLMError(f"the model's reply holds no sentence: {reply[:80]!r}")
        if all(c.refusal for c in claims):
            result = answering.abstain(question, passages)
            refused = f"{generator.name} found no answer in the sources."
            result = replace(result, mode="llm", notes=[*result.notes, refused])
        else:
            claims = [c for c in claims if not c.refusal]
            checks = verify(claims, prompt.sources, passages, embedder)
            if on_checks:
                on_checks(checks)
            result = _compose(question, passages, checks, generator.name)
            kept = [c for c in checks if c.supported]
            if kept and not _on_question(question, passages, idf, kept, min_coverage):
                result = _off_question(question, passages, result)
            if result.abstained and on_all_removed == "extractive":
                result = replace(
                    extractive,
                    notes=[*result.notes, "Showing the extractive answer instead."],
                    removed_sentences=result.removed_sentences,
                )
        timings["verify"] = (time.perf_counter() - t1) * 1e3
    except LLMError as exc:
        result = _fallback(extractive, f"The model could not answer ({exc})")
        timings["generate"] = (time.perf_counter() - t0) * 1e3
    except Exception as exc:  # never raise to the caller: the extractive answer stands
        log.exception("generated answer failed; falling back to the extractive one")
        result = _fallback(extractive, f"The generated answer failed ({type(exc).__name__})")
    rounded = {k: round(v, 2) for k, v in timings.items()}
    yield Final(replace(result, timings_ms={**result.timings_ms, **rounded}))


def _on_question(
    question: Question,
    passages: Sequence[Passage],
    idf: answering.Idf,
    kept: Sequence[Check],
    min_coverage: float | None,
) -> bool:
    """Whether a kept quote would pass the extractive support check on its own: it covers the
    question's key terms and holds the kind of answer asked for. A true sentence about
    something else is no answer (a small model often copies an unrelated source sentence)."""
    threshold = answering.MIN_COVERAGE if min_coverage is None else min_coverage
    for cand in answering.score_sentences(question, passages, idf):
        inside = any(
            k.passage == cand.passage and k.start <= cand.start and cand.end <= k.end for k in kept
        )
        if inside and answering.supported(cand, question.asked, threshold):
            return True
    return False


def _off_question(question: Question, passages: Sequence[Passage], verified: Answer) -> Answer:
    off = f"The model's verified sentences don't answer the question: “{_clip(verified.answer)}”."
    return _abstained(question, passages, [*verified.notes, off], verified.removed_sentences)


def _abstained(
    question: Question, passages: Sequence[Passage], notes: list[str], removed: int = 0
) -> Answer:
    """The model's abstention (or what verification left of its answer: nothing), with notes."""
    result = answering.abstain(question, passages)
    return replace(result, mode="llm", notes=notes, removed_sentences=removed)


def _fallback(extractive: Answer, why: str) -> Answer:
    return replace(
        extractive, notes=[*extractive.notes, f"{why}; showing the extractive answer instead."]
    )


def _compose(
    question: Question,
    passages: Sequence[Passage],
    checks: Sequence[Check],
    model: str,
) -> Answer:
    """The kept sentences with their quotes as citations, renumbered by first use."""
    kept = [c for c in checks if c.supported]
    removed = [c for c in checks if not c.supported]
    notes = [f"Generated by {model}; every sentence was checked against the quote it cites."]
    if removed:
        shown = "; ".join(f"“{_clip(c.claim.text)}” ({c.reason})" for c in removed[:SHOWN_REMOVED])
        notes.append(
            f"{len(removed)} of {len(checks)} generated sentences removed, no cited source "
            f"supports them: {shown}."
        )
    if not kept:
        return _abstained(question, passages, notes, len(removed))
    quoted = [
        answering.Quoted(
            said=c.claim.text,
            passage=c.passage,
            start=c.start,
            end=c.end,
            quote=c.quote,
            score=c.score,
        )
        for c in kept
    ]
    short = answering.short_answer(question, " ".join(c.claim.text for c in kept))
    result = answering.cited(question.query, passages, quoted, short)
    return replace(result, mode="llm", notes=notes, removed_sentences=len(removed))


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
