"""The one entry point every front end calls: ask, search, and the documents of an index."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from qa.answering import confidence
from qa.answering import extractive as answering
from qa.answering.reader import Reader, default_reader
from qa.config import MAX_TOP_K, Settings, get_settings
from qa.encoders.embedding import Embedder, check_runtime, default_embedder, index_runtime
from qa.errors import IndexMismatch, InvalidInput
from qa.language.question import Question
from qa.llm import client as llm_client
from qa.llm import generation
from qa.llm.verify import Check
from qa.records import (
    Answer,
    Document,
    EmbeddingRuntime,
    Final,
    IndexStatus,
    Message,
    Passage,
    Token,
)
from qa.retrieval import followups
from qa.retrieval import search as retrieval
from qa.retrieval.search import Filters
from qa.sources import locations
from qa.store.interface import IndexStore, IndexView
from qa.store.opening import open_store

ConfidenceMode = Literal["calibrated", "evidence", "off"]


class Engine:
    """Answers questions over one index (a folder or another store), picking up new versions
    without a restart."""

    def __init__(
        self,
        index_dir: Path | IndexStore | None = None,
        embedder: Embedder | None = None,
        settings: Settings | None = None,
        generator: llm_client.Generator | None = None,
        reader: Reader | None = None,
        calibrator: confidence.Calibrator | None = None,
        confidence_mode: ConfidenceMode = "calibrated",
    ) -> None:
        self.settings = settings or get_settings()
        self.store: IndexStore = open_store(index_dir, self.settings)
        # The folder of the index, or of its uploads when the index lives elsewhere.
        self.index_dir = Path(getattr(self.store, "index_dir", self.settings.store.index_dir))
        self.embedder = embedder or default_embedder()
        # Generated answers when QA_LLM_URL is set (or a generator is given); else extractive.
        self.generator = generator or llm_client.generator_from_settings(self.settings)
        self._owns_generator = generator is None
        # The trained reader: the short answer and the confidence's evidence (QA_READER=short);
        # QA_READER=off: the rules alone.
        self.reader = (
            None if self.settings.answering.reader == "off" else reader or default_reader()
        )
        # How sure an answer is, from the reader's and the rules' evidence
        # (qa/answering/confidence.py);
        # "evidence": the evidence, unrated (what `qa train calibrator` collects); "off": neither
        # (the answer step as it was before, for `qa bench ask` to compare with).
        self.confidence_mode = confidence_mode
        calibrated = confidence_mode == "calibrated"
        self.calibrator = (calibrator or confidence.default_calibrator()) if calibrated else None
        self._lock = threading.Lock()
        self._snapshot: IndexView | None = None
        self._idf: answering.Idf | None = None

    def close(self) -> None:
        """Let go of the LLM client this engine made (a generator it was given is the giver's)."""
        if self._owns_generator and self.generator is not None:
            self.generator.close()

    def snapshot(self) -> IndexView:
        """The live version; reloaded when another process or request has swapped in a new one."""
        version = self.store.current_version()
        snap = self._snapshot
        if snap is not None and snap.version == version:
            return snap
        with self._lock:
            if self._snapshot is None or self._snapshot.version != version:
                snap = self.store.open(self.embedder.name, self.embedder.dim)
                try:
                    check_runtime(snap.manifest, self.embedder.query_runtime(), self.store.name)
                except IndexMismatch:
                    snap.close()
                    raise
                self._snapshot = snap
                self._idf = answering.Idf(self._snapshot)
            return self._snapshot

    @property
    def min_coverage(self) -> float:
        """The abstention threshold: QA_MIN_COVERAGE, or the one calibrated on the dev sets."""
        given = self.settings.answering.min_coverage
        return answering.MIN_COVERAGE if given is None else given

    def _idf_for(self, snap: IndexView) -> answering.Idf:
        idf = self._idf
        return idf if idf is not None and idf.snapshot is snap else answering.Idf(snap)

    def ask(
        self,
        question: str,
        history: Sequence[Message] = (),
        top_k: int | None = None,
        filters: Filters | None = None,
        mode: str | None = None,
        on_checks: Callable[[Sequence[Check]], None] | None = None,
    ) -> Answer:
        """Answer a question from the documents, with citations, or abstain.

        `mode`: "extractive", "llm" (needs QA_LLM_URL), or None for llm when configured.
        `on_checks` sees the verification of each generated sentence (for `qa eval`).
        The answer is the last event of `ask_stream`'s, with the reply asked for in one piece.
        """
        r = self._retrieve(question, history, top_k, filters, mode)
        return generation.final_answer(self._answer_events(r, False, on_checks))

    def ask_stream(
        self,
        question: str,
        history: Sequence[Message] = (),
        top_k: int | None = None,
        filters: Filters | None = None,
        mode: str | None = None,
        on_checks: Callable[[Sequence[Check]], None] | None = None,
    ) -> Iterator[Token | Final]:
        """Like `ask`, as events: the model's raw tokens, then the verified answer (`Final`).

        Input checks and retrieval run before this returns, so bad input raises here rather
        than in the middle of a stream. Without a generator there is only the `Final` event.
        """
        r = self._retrieve(question, history, top_k, filters, mode)
        return self._answer_events(r, True, on_checks)

    def _answer_events(
        self,
        r: _Retrieved,
        streaming: bool,
        on_checks: Callable[[Sequence[Check]], None] | None = None,
    ) -> Iterator[Token | Final]:
        """The answer to a retrieved question, as `ask_stream` events: extractive, or written
        by the LLM (streamed token by token only when somebody watches), located in its
        documents' pages and sections and stamped with the step timings."""
        return _timed(_located(self._answers(r, streaming, on_checks), r.snap), r)

    def _answers(
        self,
        r: _Retrieved,
        streaming: bool,
        on_checks: Callable[[Sequence[Check]], None] | None = None,
    ) -> Iterator[Token | Final]:
        idf = self._idf_for(r.snap)
        if r.generator is None:
            if self.reader is not None:
                answer = answering.answer_with_reader_span(
                    r.question,
                    r.passages,
                    idf,
                    self.reader,
                    min_coverage=self.min_coverage,
                    evidence=self.confidence_mode != "off",
                )
                answer = self._rated(r, answer)
            else:
                answer = answering.answer(r.question, r.passages, idf, self.min_coverage)
            return iter([Final(answer)])
        return generation.stream_answer_with_llm(
            r.question,
            r.passages,
            idf,
            r.generator if streaming else generation.Whole(r.generator),
            self.embedder,
            max_prompt_tokens=self.settings.llm.max_prompt_tokens,
            min_coverage=self.min_coverage,
            on_checks=on_checks,
        )

    def _rated(self, r: _Retrieved, answer: Answer) -> Answer:
        """The answer with its calibrated confidence and tier: a short answer only when
        confident; below the calibrator's lower boundary, the sources don't say."""
        if answer.abstained or not answer.evidence or self.calibrator is None:
            return answer
        p = self.calibrator.probability(answer.evidence)
        tier = self.calibrator.tier(p)
        if tier == confidence.NOT_IN_SOURCES:
            why = (
                f"the closest sentence is unlikely to answer it (confidence {p:.2f}, below "
                f"{self.calibrator.guess_at:.2f})"
            )
            return answering.abstain(r.question, r.passages, why)
        short = answer.short_answer if tier == confidence.ANSWER else None
        return replace(answer, confidence=round(p, 4), tier=tier, short_answer=short)

    def _retrieve(
        self,
        question: str,
        history: Sequence[Message],
        top_k: int | None,
        filters: Filters | None,
        mode: str | None,
    ) -> _Retrieved:
        """Check the request, rewrite the question, read it (once: every later step reads the
        `Question`) and retrieve: what ask and ask_stream share."""
        text = self._check_question(question)
        top_k = self._check_top_k(top_k)
        generator = self._generator(mode)
        t0 = time.perf_counter()
        snap = self.snapshot()
        asked = Question.read(text, followups.rewrite(text, history))
        t1 = time.perf_counter()
        passages = retrieval.search(snap, self.embedder, asked.query, top_k, filters)
        return _Retrieved(
            question=asked,
            passages=passages,
            snap=snap,
            generator=generator,
            started=t0,
            rewritten=t1,
            retrieved=time.perf_counter(),
        )

    def _generator(self, mode: str | None) -> llm_client.Generator | None:
        """The generator for this request's mode, or None for an extractive answer."""
        if mode not in (None, "extractive", "llm"):
            raise InvalidInput(f"mode must be 'extractive' or 'llm', not {mode!r}")
        if mode == "llm" and self.generator is None:
            raise InvalidInput(
                "mode 'llm' needs an LLM: set QA_LLM_URL to an OpenAI-compatible endpoint"
            )
        return None if mode == "extractive" else self.generator

    def search(
        self, query: str, top_k: int | None = None, filters: Filters | None = None
    ) -> list[Passage]:
        """Ranked passages for a query, without an answer."""
        query = self._check_question(query)
        snap = self.snapshot()
        passages = retrieval.search(snap, self.embedder, query, self._check_top_k(top_k), filters)
        return locations.locate(passages, snap.marks)

    def document(self, doc_id: str) -> Document:
        return self.snapshot().document(doc_id)

    def documents(self) -> list[dict]:
        """Every document's metadata (id, title, date, source, n_chunks), sorted by id."""
        docs = self.snapshot().manifest["documents"]
        return [
            {"id": doc_id, **{k: meta.get(k) for k in ("title", "date", "source", "n_chunks")}}
            for doc_id, meta in sorted(docs.items())
        ]

    def status(self) -> IndexStatus:
        """What the live index holds: its version, counts, model and embedding runtime."""
        snap = self.snapshot()
        m = snap.manifest
        runtime = index_runtime(m)
        return IndexStatus(
            version=snap.version,
            documents=len(m["documents"]),
            chunks=m["n_chunks"],
            model=m["model"],
            dim=m["dim"],
            created_at=m["created_at"],
            embedding=EmbeddingRuntime(runtime["backend"], runtime["agreement"]),
        )

    def _check_question(self, question: str) -> str:
        if not isinstance(question, str) or not question.strip():
            raise InvalidInput("the question is empty; type a question about your documents")
        limit = self.settings.retrieval.max_question_chars
        if len(question) > limit:
            raise InvalidInput(
                f"the question is {len(question)} characters long; the limit is {limit}"
            )
        return question.strip()

    def _check_top_k(self, top_k: int | None) -> int:
        top_k = self.settings.retrieval.top_k if top_k is None else top_k
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}, not {top_k}")
        return top_k


@dataclass(frozen=True, kw_only=True)
class _Retrieved:
    """A checked request with its passages, and when each step started and ended."""

    question: Question  # with the query it was searched with
    passages: list[Passage]
    snap: IndexView
    generator: llm_client.Generator | None
    started: float
    rewritten: float
    retrieved: float

    def timings(self) -> dict[str, float]:
        """rewrite / retrieve / answer / total, in ms, as of now."""
        now = time.perf_counter()
        ms = {
            "rewrite": self.rewritten - self.started,
            "retrieve": self.retrieved - self.rewritten,
            "answer": now - self.retrieved,
            "total": now - self.started,
        }
        return {k: round(v * 1e3, 2) for k, v in ms.items()}


def _located(events: Iterator[Token | Final], snap: IndexView) -> Iterator[Token | Final]:
    """Pass events through, with the page and section of each citation and passage."""
    for event in events:
        if isinstance(event, Final):
            event = Final(locations.locate_answer(event.answer, snap.marks))
        yield event


def _timed(events: Iterator[Token | Final], r: _Retrieved) -> Iterator[Token | Final]:
    """Pass events through, stamping the step timings on the final answer."""
    for event in events:
        if isinstance(event, Final):
            event = Final(_stamped(event.answer, r))
        yield event


def _stamped(answer: Answer, r: _Retrieved) -> Answer:
    """The answer with the step timings beside its own (an LLM answer's generate/verify)."""
    return replace(answer, timings_ms={**answer.timings_ms, **r.timings()})
