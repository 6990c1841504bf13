"""Small typed records the pipeline passes along: Document, Chunk, Passage, Citation, Answer;
what an index holds; the messages of a conversation; the events of a streamed answer.

The records with many fields are built with keywords only, so no two fields can be swapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


@dataclass(frozen=True)
class Mark:
    """Where a page or a section starts in a document's normalized text (`start` is an offset).

    A document's marks are sorted by `start`; the text from one mark to the next lies on that
    page (1-based) and under that heading path ("Results > Table 2"), and came from OCR or not.
    """

    start: int
    page: int | None = None
    section: str | None = None
    ocr: bool = False


@dataclass(frozen=True, kw_only=True)
class Document:
    """A source document with its full normalized text; every offset points into `text`."""

    id: str
    text: str
    title: str
    source: str
    hash: str
    date: str | None = None
    place: str | None = None
    author: str | None = None
    marks: tuple[Mark, ...] = ()  # pages and sections, by offset; none for plain text


@dataclass(frozen=True)
class Chunk:
    """A window of sentences: `document.text[start:end] == text`."""

    doc_id: str
    ord: int
    start: int
    end: int
    text: str


@dataclass(frozen=True, kw_only=True)
class Passage:
    """A retrieved span of one document (overlapping chunks merged), with its fused score."""

    doc_id: str
    title: str
    date: str | None
    source: str
    start: int
    end: int
    text: str
    score: float
    dense_score: float = 0.0
    lexical_score: float = 0.0
    page: int | None = None  # where `start` lies in the source (see Mark)
    section: str | None = None
    ocr: bool = False


@dataclass(frozen=True, kw_only=True)
class Citation:
    """A verbatim quote: `document.text[start:end] == quote`."""

    n: int
    doc_id: str
    title: str
    date: str | None
    source: str
    quote: str
    start: int
    end: int
    score: float
    page: int | None = None  # where `start` lies in the source (see Mark)
    section: str | None = None
    ocr: bool = False


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What `Engine.ask` returns to every front end (a new one, by `dataclasses.replace`, for
    each step that adds to it)."""

    answer: str
    short_answer: str | None
    abstained: bool
    query: str
    citations: list[Citation]
    passages: list[Passage]
    timings_ms: dict[str, float] = field(default_factory=dict)
    mode: str = "extractive"
    notes: list[str] = field(default_factory=list)
    removed_sentences: int = 0  # generated sentences dropped because no cited quote supports them
    # How sure it is (qa/answering/confidence.py): the probability that the answer is right
    # (None where nothing calibrated rates it: an LLM's answer, or QA_READER=off), and its tier:
    # "answer"
    # (confident; the only tier with a short answer), "best_guess", "not_in_sources".
    confidence: float | None = None
    tier: str = "answer"
    evidence: dict[str, float] = field(default_factory=dict)  # what the confidence was made of

    @property
    def confident(self) -> bool | None:
        """Whether qa is sure of it: None where no calibrated confidence exists."""
        if self.abstained:
            return False
        return None if self.confidence is None else self.tier == "answer"


@dataclass(frozen=True)
class EmbeddingRuntime:
    """The runtime an index's vectors came from, and their mean cosine with torch fp32's."""

    backend: str  # "torch", "onnx-int8", ...; "onnx + torch" where runtimes were mixed
    agreement: float


@dataclass(frozen=True, kw_only=True)
class IndexStatus:
    """What the live index holds (`Engine.status`), as its manifest says."""

    version: str
    documents: int
    chunks: int
    model: str
    dim: int
    created_at: str  # UTC, ISO 8601
    embedding: EmbeddingRuntime


class Message(TypedDict):
    """One turn of a conversation, as chat APIs exchange them."""

    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Token:
    """A piece of the model's reply as it streams: unverified, for display while waiting."""

    text: str


@dataclass(frozen=True)
class Final:
    """The verified answer; it replaces whatever the tokens showed."""

    answer: Answer
