"""The page's text helpers: quotes marked by offsets, HTML and markdown made inert."""

from __future__ import annotations

import html
import re

from qa.serving.schemas import CitationOut, PassageOut
from ui import render

DOC = "Intro line.\n\nThe <b>loan</b> is $1.25 billion & more. Next *sentence* here."
MARK = re.compile(r"<mark[^>]*>(.*?)</mark>", re.DOTALL)


def passage(start: int, end: int, doc_id: str = "d") -> PassageOut:
    return PassageOut(
        doc_id=doc_id, title="T", date=None, source="s", start=start, end=end,
        text=DOC[start:end], score=1.0, dense_score=0.5, lexical_score=0.5,
    )  # fmt: skip


def citation(quote: str, doc_id: str = "d") -> CitationOut:
    start = DOC.index(quote)
    return CitationOut(
        n=1, doc_id=doc_id, title="T", date=None, source="s", quote=quote,
        start=start, end=start + len(quote), score=1.0,
    )  # fmt: skip


def test_quote_is_marked_at_its_offsets_inside_its_passage() -> None:
    c = citation("The <b>loan</b> is $1.25 billion & more.")
    passages = [passage(0, 11), passage(3, len(DOC)), passage(0, len(DOC), doc_id="other")]
    p = render.passage_for(c, passages)
    assert p is passages[1]
    out = render.quote_in_passage(c, p)
    assert html.unescape(MARK.search(out).group(1)) == c.quote
    assert "<b>" not in out  # the document's text is shown, never interpreted
    assert html.unescape(re.sub(r"<[^>]+>", "", out)) == p.text


def test_quote_alone_when_no_passage_holds_it() -> None:
    c = citation("Next *sentence* here.")
    assert render.passage_for(c, [passage(0, 20)]) is None
    out = render.quote_in_passage(c, None)
    assert html.unescape(MARK.search(out).group(1)) == c.quote


def test_whole_document_scrolls_to_the_quote() -> None:
    c = citation("Next *sentence* here.")
    out = render.quote_in_document(DOC, c.start, c.end)
    assert html.unescape(MARK.search(out).group(1)) == c.quote
    assert "scrollTop" in out and f"qa-doc-{c.start}-{c.end}" in out


def test_answer_markdown_is_literal_with_bold_markers() -> None:
    out = render.answer_markdown("It costs $1.25 billion *now* [1]. See a_b [12].\n# not a heading")
    assert "\\$1.25" in out and "\\*now\\*" in out and "a\\_b" in out
    assert "**\\[1\\]**" in out and "**\\[12\\]**" in out
    assert "\n\\# not a heading" in out


def test_card_label_says_where_the_quote_is() -> None:
    c = citation("Intro line.").model_copy(update={"page": 12, "section": "Results > *Table* 2"})
    assert render.card_label(c, c.n) == "[1] T · p. 12 · Results \\> \\*Table\\* 2"
    scanned = c.model_copy(update={"section": None, "ocr": True, "date": "2025-01-02"})
    assert render.card_label(scanned, 3) == "[3] T · 2025-01-02 · p. 12 · OCR"
    assert render.card_label(passage(0, 5)) == "T"


def test_source_line_leaves_out_a_missing_date() -> None:
    assert render.source_line(None, "notes/a_b.txt", 3, 9) == "notes/a\\_b.txt · chars 3–9"
    assert render.source_line("2025-01-02", "x.txt", 0, 1) == "2025-01-02 · x.txt · chars 0–1"


def test_upload_progress_counts_the_stage_in_its_own_units() -> None:
    assert render.job_progress("running", "embedding", 40, 120) == "Embedding: 40 of 120 chunks"
    assert render.job_progress("running", "checking", 1, 3) == "Checking: 1 of 3 files"
    assert render.job_progress("running", "reading scanned pages", 2, 9).endswith("2 of 9 pages")
    assert render.job_progress("queued", None, 0, 0).startswith("Queued")


def test_each_uploaded_file_says_what_became_of_it() -> None:
    failed = render.file_line("a_b.exe", "failed", "unsupported file type .exe", "done")
    assert failed == ":material/error: **a\\_b.exe** · not indexed: unsupported file type .exe"
    assert render.file_line("n.txt", "added", None, "done").endswith("**n.txt** · added")
    assert render.file_line("n.txt", "pending", None, "running").endswith("· indexing…")
    assert render.file_line("n.txt", "pending", None, "queued").endswith("· waiting")
