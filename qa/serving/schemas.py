"""The HTTP schema: what `POST /ask` and friends take and return (and `qa ask --json` prints)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from qa.config import MAX_QUESTION_CHARS, MAX_TOP_K, QUESTION_CHARS_CEILING
from qa.records import Answer, Citation, Passage
from qa.retrieval.search import Filters

MAX_HISTORY = 20
# The service's QA_MAX_QUESTION_CHARS is checked by the engine (a 422 naming the limit); the
# schema only holds the ceiling that any setting may reach.
QUESTION_DOC = (
    f"At most the service's QA_MAX_QUESTION_CHARS characters ({MAX_QUESTION_CHARS:,} unless set "
    "otherwise); a longer one gets a 422 naming the limit."
)
TOP_K_DOC = f"Passages to retrieve, 1 to {MAX_TOP_K} [default: the service's QA_TOP_K, 5]."
PAGE_DOC = "The PDF page (1-based) where it starts; null for formats without pages."
SECTION_DOC = (
    'The heading path where it starts ("Results > Table 2") in Markdown, HTML and DOCX; null '
    "where the document has no headings there."
)
OCR_DOC = "True when that text was read from a scanned page by OCR (check it against the page)."


SOURCE_DOC = (
    "Where the document came from: its path relative to the folder it was indexed from, or its "
    "file name (an upload, a file named on its own); never a path of the server's."
)


def shown_source(source: str, doc_id: str) -> str:
    """A document's source as the service shows it: the indexed path relative to its folder.

    Indexes store the absolute path (to find the file again); what leaves the service is the
    part of it the document id names (a folder's file: its relative path; a file named on its
    own or uploaded: its name), else the file name. A URL or a relative path is kept.
    """
    path = PurePosixPath(source)
    if "://" in source or not path.is_absolute():
        return source
    rel = PurePosixPath(doc_id)
    if not rel.is_absolute() and rel.parts and path.parts[-len(rel.parts) :] == rel.parts:
        return rel.as_posix()
    return path.name


class Message(BaseModel):
    """One earlier turn of the conversation."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class FiltersIn(BaseModel):
    """Limit which documents may answer."""

    model_config = ConfigDict(extra="forbid")
    doc_ids: list[str] = Field(default_factory=list, max_length=1000, description="Document ids.")
    date_from: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="Earliest document date, YYYY-MM-DD."
    )
    date_to: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="Latest document date, YYYY-MM-DD."
    )

    def to_filters(self) -> Filters:
        return Filters(tuple(self.doc_ids), self.date_from, self.date_to)


class AskRequest(BaseModel):
    """A question, optionally with the conversation so far."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=QUESTION_CHARS_CEILING, description=QUESTION_DOC)
    history: list[Message] = Field(default_factory=list, max_length=MAX_HISTORY)
    top_k: StrictInt | None = Field(None, ge=1, le=MAX_TOP_K, description=TOP_K_DOC)
    filters: FiltersIn | None = None
    mode: Literal["extractive", "llm"] | None = Field(
        None,
        description="`extractive` (quotes only) or `llm` (generated, every sentence verified; "
        "needs QA_LLM_URL). Default: llm when an LLM is configured, else extractive.",
    )
    stream: StrictBool = Field(
        False,
        description="Answer as server-sent events: `event: token` frames with the model's raw, "
        "unverified words while it writes, then one `event: answer` whose data is this "
        "endpoint's JSON body (the verified answer, which replaces the tokens).",
    )


class SearchRequest(BaseModel):
    """A search without an answer."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=QUESTION_CHARS_CEILING, description=QUESTION_DOC)
    top_k: StrictInt | None = Field(None, ge=1, le=MAX_TOP_K, description=TOP_K_DOC)
    filters: FiltersIn | None = None


# Where a quote or a passage lies in its source (see `qa.records.Mark`), documented once.
Page = Annotated[int | None, Field(description=PAGE_DOC)]
Section = Annotated[str | None, Field(description=SECTION_DOC)]
Ocr = Annotated[bool, Field(description=OCR_DOC)]
Source = Annotated[str, Field(description=SOURCE_DOC)]


class _Shown(BaseModel):
    """A record as the service shows it: the same fields, in the same order, with the source
    path shown as `shown_source` has it."""

    @classmethod
    def of(cls, record: Citation | Passage) -> Self:
        return cls(**{**vars(record), "source": shown_source(record.source, record.doc_id)})


class CitationOut(_Shown):
    """A verbatim quote: document.text[start:end] == quote."""

    n: int
    doc_id: str
    title: str
    date: str | None
    source: Source
    quote: str
    start: int
    end: int
    score: float
    page: Page = None
    section: Section = None
    ocr: Ocr = False


class PassageOut(_Shown):
    """A retrieved passage: document.text[start:end] == text."""

    doc_id: str
    title: str
    date: str | None
    source: Source
    start: int
    end: int
    text: str
    score: float
    dense_score: float
    lexical_score: float
    page: Page = None
    section: Section = None
    ocr: Ocr = False


class AskResponse(BaseModel):
    """The answer with its citations; `abstained` when the sources don't say."""

    answer: str
    short_answer: str | None
    abstained: bool
    query: str = Field(description="What was searched (the question, rewritten for follow-ups).")
    citations: list[CitationOut]
    passages: list[PassageOut]
    timings_ms: dict[str, float]
    mode: str = Field(
        "extractive",
        description='"extractive", or "llm": generated, every sentence verified against its quote.',
    )
    notes: list[str] = Field(default_factory=list)
    removed_sentences: int = Field(
        0, description="Generated sentences removed because no cited quote supports them."
    )
    confidence: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="The calibrated probability that the answer is right (models/calibrator); "
        "null where nothing calibrated rates it: an abstention, an LLM's answer (its sentences "
        "are verified against their quotes instead), or QA_READER=off.",
    )
    confident: bool | None = Field(
        None,
        description="Whether qa is sure of the answer (confidence at or above the calibrator's "
        "`answer_at`); only a confident answer has a `short_answer`. false when it abstains; "
        "null where no calibrated confidence exists (LLM mode).",
    )
    tier: Literal["answer", "best_guess", "not_in_sources"] = Field(
        "answer",
        description='"answer": confident; "best_guess": shown as uncertain, with its quotes and '
        'no short answer; "not_in_sources": the sources don\'t say (abstained).',
    )

    @classmethod
    def of(cls, a: Answer) -> AskResponse:
        return cls(
            answer=a.answer,
            short_answer=a.short_answer,
            abstained=a.abstained,
            query=a.query,
            citations=[CitationOut.of(c) for c in a.citations],
            passages=[PassageOut.of(p) for p in a.passages],
            timings_ms=a.timings_ms,
            mode=a.mode,
            notes=a.notes,
            removed_sentences=a.removed_sentences,
            confidence=a.confidence,
            confident=a.confident,
            tier=a.tier,
        )


class SearchResponse(BaseModel):
    query: str
    passages: list[PassageOut]


class DocumentSummary(BaseModel):
    id: str
    title: str
    date: str | None
    source: str = Field(description=SOURCE_DOC)
    n_chunks: int

    @classmethod
    def of(cls, meta: dict) -> DocumentSummary:
        """From a manifest entry with its id (Engine.documents)."""
        return cls(**{**meta, "source": shown_source(meta["source"], meta["id"])})


class DocumentPage(BaseModel):
    total: int
    offset: int
    limit: int
    documents: list[DocumentSummary]


class DocumentFull(DocumentSummary):
    place: str | None
    author: str | None = None
    hash: str
    text: str


class FileOutcome(BaseModel):
    """What happened to one file of an upload; `error` says why it was not indexed."""

    filename: str
    status: Literal["pending", "added", "updated", "unchanged", "failed"]
    error: str | None = None


class Job(BaseModel):
    """An upload being indexed: its progress, and each file's outcome."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    stage: str | None = Field(
        None,
        description="checking (files), reading (files), reading scanned pages (pages), "
        "embedding (chunks of this upload), writing (files), done.",
    )
    done: int = Field(0, description="Units of the stage done so far.")
    total: int = Field(0, description="Units of the stage in all.")
    files: list[FileOutcome]
    error: str | None = None
    version: str | None = None
    created_at: str | None = Field(None, description="When it was accepted (UTC, ISO 8601).")


class Health(BaseModel):
    ok: bool = Field(description="Whether an index is loaded.")
    ready: bool = Field(
        True,
        description="Whether the service has loaded its models and index; false while it "
        "starts (other routes wait until then). `qa up` prints its URLs once it is true.",
    )
    error: str | None = Field(None, description="Why the service could not start, if it could not.")
    version: str | None
    documents: int
    chunks: int
    model: str
    embed_backend: str = Field(
        "", description="The runtime encoding questions here (QA_EMBED_BACKEND, resolved)."
    )
    index_backend: str | None = Field(
        None, description="The runtime the index's vectors came from, per its manifest."
    )


class ErrorBody(BaseModel):
    """Every error has this shape."""

    error: str = Field(description="A machine-readable code, e.g. invalid_input, not_found.")
    message: str = Field(description="What went wrong and what to do about it.")
