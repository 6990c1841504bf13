"""Pure text helpers for the page: quotes highlighted by offsets, answers made safe for markdown."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from qa.serving.schemas import CitationOut, PassageOut
from qa.sources import locations

MARK_STYLE = "background:#ffe58f;color:#1f1f1f;padding:0 2px;border-radius:3px"
BOX_STYLE = "line-height:1.6;white-space:pre-wrap"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>$~|])")
_LINE_START = re.compile(r"^(\s*)([#+\-=]|\d+(?=\.))", re.MULTILINE)
_MARKER = re.compile(r"\\\[(\d+)\\\]")
DRAFT_CAPTION = (
    ":material/hourglass_top: Model draft, being verified… "
    "the verified answer with its sources replaces it."
)


def passage_for(citation: CitationOut, passages: Sequence[PassageOut]) -> PassageOut | None:
    """The retrieved passage that holds the citation's [start, end], if any."""
    for p in passages:
        if p.doc_id == citation.doc_id and p.start <= citation.start and citation.end <= p.end:
            return p
    return None


def highlight(text: str, start: int, end: int, *, scroll_box: bool = False) -> str:
    """`text` as HTML with text[start:end] marked; offsets are relative to `text`."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    body = (
        html.escape(text[:start])
        + f'<mark style="{MARK_STYLE}">'
        + html.escape(text[start:end])
        + "</mark>"
        + html.escape(text[end:])
    )
    style = BOX_STYLE + (";position:relative;max-height:60vh;overflow-y:auto" if scroll_box else "")
    return f'<div class="qa-source" style="{style}">{body}</div>'


def plain(text: str) -> str:
    """`text` as HTML, nothing marked."""
    return f'<div class="qa-source" style="{BOX_STYLE}">{html.escape(text)}</div>'


def quote_in_passage(citation: CitationOut, passage: PassageOut | None) -> str:
    """The citation's quote highlighted inside its passage, or alone when no passage holds it."""
    if passage is not None:
        start, end = citation.start - passage.start, citation.end - passage.start
        if passage.text[start:end] == citation.quote:
            return highlight(passage.text, start, end)
    return highlight(citation.quote, 0, len(citation.quote))


def quote_in_document(text: str, start: int, end: int) -> str:
    """The whole document with the quote at [start, end] highlighted, in a box scrolled to it."""
    box_id = f"qa-doc-{start}-{end}"
    box = highlight(text, start, end, scroll_box=True).replace(
        '<div class="qa-source"', f'<div id="{box_id}" class="qa-source"', 1
    )
    # Needs st.html(..., unsafe_allow_javascript=True); without it the box just starts at the top.
    script = (
        "<script>(() => {"
        f"const box = document.getElementById({box_id!r}); if (!box) return;"
        "const mark = box.querySelector('mark'); if (!mark) return;"
        "box.scrollTop = Math.max(0, mark.offsetTop - box.clientHeight / 3);"
        "})();</script>"
    )
    return box + script


def escape_markdown(text: str) -> str:
    """Text shown literally by st.markdown (no emphasis, links or `$` math)."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    # A line starting "# ", "- " or "1. " would become a heading or a list.
    return _LINE_START.sub(_escape_line_start, text)


def _escape_line_start(m: re.Match[str]) -> str:
    lead, mark = m.group(1), m.group(2)
    return lead + (mark + "\\" if mark[0].isdigit() else "\\" + mark)


def answer_markdown(answer: str) -> str:
    """The answer, escaped, with its citation markers like "[1]" in bold."""
    return _MARKER.sub(r"**\\[\1\\]**", escape_markdown(answer))


def card_label(item: CitationOut | PassageOut, n: int | None = None) -> str:
    """A source card's title line: "[1] Title · 2025-10-14 · p. 12 · Results", escaped."""
    where = locations.label(item.page, item.section, item.ocr)
    parts = [escape_markdown(item.title), item.date or "", escape_markdown(where)]
    return ("" if n is None else f"[{n}] ") + " · ".join(p for p in parts if p)


def source_line(date: str | None, source: str, start: int, end: int) -> str:
    """The caption under a title: date (when known), source and character span, escaped."""
    parts = [date or "", source, f"chars {start}–{end}"]
    return " · ".join(escape_markdown(p) for p in parts if p)


def draft_markdown(text: str) -> str:
    """The model's unverified draft, escaped and greyed out, a paragraph per line."""
    lines = escape_markdown(text.strip()).split("\n")
    return "\n\n".join(f":gray[{line.strip()}]" for line in lines if line.strip())


def answer_notes(notes: Sequence[str], removed_sentences: int) -> list[str]:
    """The answer's notes, plus the count of removed sentences when no note tells it."""
    if removed_sentences and not any("removed" in n for n in notes):
        plural = "s" if removed_sentences != 1 else ""
        return [*notes, f"{removed_sentences} unsupported sentence{plural} removed"]
    return list(notes)


def best_guess_note(confidence: float | None) -> str:
    """What a person reads above an answer qa is not sure of."""
    sure = f" (confidence {confidence:.0%})" if confidence is not None else ""
    return (
        f"**Best guess**{sure}: qa is not sure this answers your question. "
        "Check the quotes below before relying on it."
    )


def confidence_label(confidence: float, confident: bool | None) -> str:
    """The caption's word on how sure the answer is."""
    return f"{'confident' if confident else 'best guess'}, {confidence:.0%} likely right"


# What a stage of an upload job counts (see qa.serving.schemas.Job.stage).
_STAGE_UNITS = {
    "checking": "files",
    "reading": "files",
    "reading scanned pages": "pages",
    "embedding": "chunks",
    "writing": "files",
}


def job_progress(status: str, stage: str | None, done: int, total: int) -> str:
    """The text of an upload's progress bar: "Embedding: 40 of 120 chunks"."""
    if status == "queued":
        return "Queued: it starts when the uploads before it are indexed…"
    if stage is None or not total:
        return f"{(stage or status).capitalize()}…"
    unit = _STAGE_UNITS.get(stage, "")
    return f"{stage.capitalize()}: {done} of {total} {unit}".rstrip()


def job_summary(files: Sequence) -> str:
    """ "2 added, 1 failed": how many files ended how, in the order first seen."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f.status] = counts.get(f.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


_FILE_ICONS = {
    "added": ":material/check_circle:",
    "updated": ":material/check_circle:",
    "unchanged": ":material/check_circle:",
    "failed": ":material/error:",
    "pending": ":material/schedule:",
}


def file_line(name: str, status: str, error: str | None, job_status: str) -> str:
    """One file of an upload, as markdown: its name and what became of it, with the reason
    when it was not indexed ("notes.txt · added", "a.exe · not indexed: unsupported …")."""
    if status == "failed":
        state = f"not indexed: {escape_markdown(error or 'see the service log')}"
    elif status == "pending":
        state = {"queued": "waiting", "running": "indexing…"}.get(job_status, "not indexed")
    elif status == "unchanged":
        state = "unchanged (already indexed)"
    else:
        state = escape_markdown(status)
    return f"{_FILE_ICONS.get(status, '')} **{escape_markdown(name)}** · {state}".strip()


def indexing_note(names: Sequence[str]) -> str:
    """Said above an answer given while some uploaded files were still being indexed."""
    shown = ", ".join(escape_markdown(n) for n in names[:5]) + (" …" if len(names) > 5 else "")
    return (
        f"Still being indexed when this was answered: {shown}. What they say may be missing "
        "from this answer; ask again when the upload is done."
    )
