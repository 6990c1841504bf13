"""Where a passage or a quote lies in its source: page, section and OCR, read off the marks
that ingest stored for its document (offsets stay offsets into the full normalized text)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from qa.records import Answer, Citation, Mark, Passage

Located = TypeVar("Located", Passage, Citation)
MarksOf = Callable[[str], Sequence[Mark]]  # a document's marks by its id


def mark_at(marks: Sequence[Mark], offset: int) -> Mark | None:
    """The page or section that `offset` lies in: the last mark starting at or before it."""
    i = bisect_right([m.start for m in marks], offset) - 1
    return marks[i] if i >= 0 else None


def locate(items: Sequence[Located], marks_of: MarksOf) -> list[Located]:
    """Passages or citations with the page, section and OCR flag of where each starts."""
    cache: dict[str, Sequence[Mark]] = {}
    out = []
    for item in items:
        if item.doc_id not in cache:
            cache[item.doc_id] = marks_of(item.doc_id)
        mark = mark_at(cache[item.doc_id], item.start)
        out.append(item if mark is None else _placed(item, mark))
    return out


def locate_answer(answer: Answer, marks_of: MarksOf) -> Answer:
    """The answer with its citations and passages located."""
    return replace(
        answer,
        citations=locate(answer.citations, marks_of),
        passages=locate(answer.passages, marks_of),
    )


def label(page: int | None, section: str | None, ocr: bool = False) -> str:
    """ "p. 12 · Results > Table 2 · OCR", or "" where the source has no pages or sections."""
    parts = [f"p. {page}" if page is not None else "", section or "", "OCR" if ocr else ""]
    return " · ".join(p for p in parts if p)


def _placed(item: Located, mark: Mark) -> Located:
    return replace(item, page=mark.page, section=mark.section, ocr=mark.ocr)
