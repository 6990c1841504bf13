"""Sources as people have them: a question answered from a PDF cites its page, from Markdown,
DOCX or a saved web page its section; a saved page is indexed without its boilerplate; a scanned
PDF is read by OCR. Real files made here, the real model, index and engine."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qa.engine import Engine
from qa.indexing import index_paths
from qa.records import Mark
from qa.sources import ingest
from qa.store import folder as store

SAVED_PAGES = Path(__file__).parent / "data" / "saved-pages"
EXPECTED = json.loads((SAVED_PAGES / "expected.json").read_text(encoding="utf-8"))

# One fact per PDF page, each about a different plant, so each question has one right page.
PDF_FACTS = [
    ("Aldermoor", "The Aldermoor smelter produced 4,200 tonnes of copper in 2021."),
    ("Brackenford", "The Brackenford mill employed 315 workers at the end of 2019."),
    ("Caldwick", "The Caldwick quarry was opened in 1962 by the Harlow family."),
    ("Dunmere", "The Dunmere refinery burned 18,000 tonnes of coal a year before it closed."),
    ("Eskdale", "The Eskdale pit reached a depth of 640 metres in 1931."),
]
MARKDOWN = """---
title: Karoo groundwater survey
---
# Karoo groundwater survey

A survey of rural water supplies.

## Methods

### Sampling

We sampled 340 wells across the Karoo basin between March and June.

### Laboratory

Samples were tested by the Stellenbosch water laboratory.

## Results

### Table 2

The median arsenic level was 14 micrograms per litre.

```python
# not a heading: a comment in a code block
x = 1
```

## Discussion

Deeper wells held less arsenic than shallow ones.
"""


def make_pdf(path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for name, fact in PDF_FACTS:
        pdf.add_page()
        pdf.multi_cell(0, 10, f"Site report: {name}.\n\n{fact}\n\nOther notes follow next week.")
    pdf.output(str(path))


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("City transport plan", level=0)  # the "Title" style
    document.add_paragraph("A plan for the next five years of city transport.")
    document.add_heading("Budget", level=1)
    document.add_heading("Capital spending", level=2)
    document.add_paragraph("The council approved 7.5 million euros for new electric buses.")
    document.add_heading("Staffing", level=1)
    document.add_heading("Drivers", level=2)
    document.add_paragraph("The transport company will hire 120 new bus drivers by June.")
    document.save(path)


def scanned_page(lines: list[str]):
    """An A4 page at 300 dpi with the lines drawn on it: a scan, with no text layer."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (2480, 3508), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=56)
    for n, line in enumerate(lines):
        draw.text((250, 300 + 110 * n), line, fill=0, font=font)
    return image


def make_scanned_pdf(path: Path) -> None:
    first = scanned_page(["Maintenance contract.", "The contract starts on 1 March 2025."])
    second = scanned_page(
        ["Penalties.", "The supplier pays a penalty of 900 euros", "for each day of delay."]
    )
    first.save(path, save_all=True, append_images=[second], resolution=300)


HAVE_OCR = bool(shutil.which("tesseract") and shutil.which("pdftoppm"))
needs_ocr = pytest.mark.skipif(
    not HAVE_OCR, reason="needs tesseract and pdftoppm: `make install` installs them"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    make_pdf(folder / "plants.pdf")
    make_docx(folder / "transport.docx")
    (folder / "survey.md").write_text(MARKDOWN, encoding="utf-8")
    shutil.copy(SAVED_PAGES / "harbour-council.html", folder / "harbour-council.html")
    if HAVE_OCR:
        make_scanned_pdf(folder / "contract-scan.pdf")
    return folder


@pytest.fixture(scope="module")
def index_dir(corpus, tmp_path_factory, embedder) -> Path:
    index_dir = tmp_path_factory.mktemp("sources-index")
    report = index_paths([corpus], index_dir, embedder)
    assert report.ok, report.failed
    return index_dir


@pytest.fixture(scope="module")
def engine(index_dir, embedder):
    engine = Engine(index_dir, embedder=embedder)
    yield engine
    engine.close()


def cited(engine: Engine, question: str, doc_id: str):
    """The answer's first citation, checked to be verbatim and from `doc_id`."""
    answer = engine.ask(question)
    assert not answer.abstained, answer.answer
    first = answer.citations[0]
    assert first.doc_id == doc_id, (question, answer.citations)
    for c in answer.citations:
        assert engine.document(c.doc_id).text[c.start : c.end] == c.quote
    return first


@pytest.mark.parametrize(("page", "fact"), list(enumerate(PDF_FACTS, start=1)))
def test_each_pdf_page_is_cited_with_its_page_number(engine, page, fact):
    name, _ = fact
    questions = {
        "Aldermoor": "How many tonnes of copper did the Aldermoor smelter produce in 2021?",
        "Brackenford": "How many workers did the Brackenford mill employ?",
        "Caldwick": "When was the Caldwick quarry opened?",
        "Dunmere": "How much coal did the Dunmere refinery burn a year?",
        "Eskdale": "What depth did the Eskdale pit reach?",
    }
    citation = cited(engine, questions[name], "plants.pdf")
    assert name in citation.quote
    assert (citation.page, citation.section, citation.ocr) == (page, None, False)


@pytest.mark.parametrize(
    ("question", "section", "words"),
    [
        ("How many wells were sampled in the Karoo basin?", "Methods > Sampling", "340 wells"),
        ("What was the median arsenic level?", "Results > Table 2", "14 micrograms"),
    ],
)
def test_markdown_answers_cite_their_heading_path(engine, question, section, words):
    citation = cited(engine, question, "survey.md")
    assert words in citation.quote
    assert (citation.section, citation.page) == (section, None)


@pytest.mark.parametrize(
    ("question", "section", "words"),
    [
        (
            "How much did the council approve for electric buses?",
            "Budget > Capital spending",
            "7.5",
        ),
        ("How many bus drivers will the transport company hire?", "Staffing > Drivers", "120"),
    ],
)
def test_docx_answers_cite_their_heading_path(engine, question, section, words):
    citation = cited(engine, question, "transport.docx")
    assert words in citation.quote
    assert citation.section == section


def test_saved_news_page_is_answered_from_the_article_body(engine):
    citation = cited(engine, "How much will the new ferry terminal cost?", "harbour-council.html")
    assert "48 million euros" in citation.quote
    late = cited(
        engine, "When is construction of the terminal expected to begin?", "harbour-council.html"
    )
    assert "March" in late.quote and late.section == "What happens next"


def test_nothing_of_a_saved_pages_boilerplate_is_indexed(engine):
    expected = EXPECTED["harbour-council.html"]
    doc = engine.document("harbour-council.html")
    assert (doc.title, doc.author, doc.date) == (
        expected["title"],
        expected["author"],
        expected["date"],
    )
    snap = engine.snapshot()
    chunks = " ".join(c.text for _, c in snap.doc_chunks("harbour-council.html"))
    for kept in expected["keep"]:
        assert kept in doc.text
    for dropped in expected["drop"]:
        assert dropped not in doc.text and dropped not in chunks
    passages = engine.search("comments cookies accept subscribe newsletter privacy", top_k=10)
    assert not any(
        d in p.text for p in passages for d in expected["drop"] if p.doc_id.endswith(".html")
    )


@needs_ocr
def test_scanned_pdf_is_answered_through_ocr_with_its_page(engine):
    citation = cited(engine, "How much is the penalty for each day of delay?", "contract-scan.pdf")
    assert "900 euros" in citation.quote
    assert (citation.page, citation.ocr) == (2, True)


def test_qa_ask_prints_where_each_quote_is(index_dir):
    from typer.testing import CliRunner

    from qa.cli import app

    question = "How many bus drivers will the transport company hire?"
    result = CliRunner().invoke(app, ["ask", question, "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "(transport.docx, Staffing > Drivers, chars " in result.output
    as_json = CliRunner().invoke(app, ["ask", question, "--index", str(index_dir), "--json"])
    (first, *_) = json.loads(as_json.output)["citations"]
    assert (first["section"], first["page"], first["ocr"]) == ("Staffing > Drivers", None, False)


def test_search_passages_carry_their_location(engine):
    (passage,) = engine.search("Eskdale pit depth metres", top_k=1)
    assert (passage.doc_id, passage.page) == ("plants.pdf", 5)


@pytest.mark.parametrize("saved", sorted(name for name in EXPECTED if name.endswith(".html")))
def test_saved_pages_keep_the_article_and_its_metadata(saved):
    expected = EXPECTED[saved]
    doc = ingest.load(SAVED_PAGES / saved, saved)
    assert (doc.title, doc.author, doc.date) == (
        expected["title"],
        expected["author"],
        expected["date"],
    )
    missing = [k for k in expected["keep"] if k not in doc.text]
    leaked = [d for d in expected["drop"] if d in doc.text]
    assert not missing and not leaked, (missing, leaked)


def test_scanned_pdf_without_tesseract_is_reported_with_the_install_command(
    tmp_path, monkeypatch, fake_embedder
):
    scan = tmp_path / "scan.pdf"
    scanned_page(["A signed contract."]).save(scan, resolution=300)
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    report = index_paths([scan], tmp_path / "index", fake_embedder)
    ((path, reason),) = report.failed
    assert path == str(scan)
    assert "page 1 of 1 has no text layer and needs OCR" in reason
    assert "apt-get install tesseract-ocr" in reason
    assert report.added == []


@given(
    st.lists(
        st.tuples(
            st.text(alphabet=" \n\t\r\u00a0ab.", max_size=12), st.integers(1, 9), st.booleans()
        ),
        max_size=8,
    )
)
def test_marks_point_at_their_parts_in_the_normalized_text(raw):
    parts = [ingest.Part(text, page=page, ocr=ocr) for text, page, ocr in raw]
    text, marks = ingest.assemble(parts)
    assert text == ingest.normalize(text)  # joining normalized parts keeps it normalized
    kept = [p for p in parts if ingest.normalize(p.text)]
    assert [m.start for m in marks] == sorted({m.start for m in marks})
    at = 0
    for n, part in enumerate(kept):
        piece = ingest.normalize(part.text)
        assert text[at : at + len(piece)] == piece
        mark = marks_at(marks, at)
        assert (mark.page, mark.ocr) == (part.page, part.ocr)
        at += len(piece) + 2 if n + 1 < len(kept) else 0


def marks_at(marks, offset):
    from qa.sources.locations import mark_at

    return mark_at(marks, offset)


def test_a_dateline_taken_as_metadata_moves_the_marks(tmp_path):
    path = tmp_path / "note.md"
    path.write_text("date 2025-01-02 Oslo: First words.\n\n## Later\n\nThe later part.\n")
    doc = ingest.load(path, "note.md")
    assert doc.date == "2025-01-02" and doc.text.startswith("Oslo: First words.")
    (mark,) = doc.marks
    assert doc.text[mark.start :].startswith("## Later") and mark.section == "Later"


def test_an_index_from_before_locations_loads_and_reindexing_adds_them(tmp_path, fake_embedder):
    """An index written before ingest version 3 has no marks: it answers without locations, and
    the next `qa index` re-reads every file (the ingest version changed) and adds them."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "survey.md").write_text(MARKDOWN, encoding="utf-8")
    index_dir = tmp_path / "index"
    assert index_paths([tmp_path / "docs"], index_dir, fake_embedder).ok
    version = index_dir / store.current_version(index_dir)
    with sqlite3.connect(version / "chunks.sqlite") as db:  # as the previous qa wrote it
        db.execute("ALTER TABLE documents DROP COLUMN marks")
        db.execute("ALTER TABLE documents DROP COLUMN author")
    manifest = json.loads((version / "manifest.json").read_text())
    (version / "manifest.json").write_text(json.dumps({**manifest, "ingest_version": 2}))

    old = Engine(index_dir, embedder=fake_embedder)
    (passage,) = old.search("median arsenic level", top_k=1)
    assert passage.section is None and old.document("survey.md").marks == ()

    report = index_paths([tmp_path / "docs"], index_dir, fake_embedder)
    assert report.updated == ["survey.md"]
    for engine in (Engine(index_dir, embedder=fake_embedder), old):  # old: picks up the new one
        doc = engine.document("survey.md")
        where = marks_at(doc.marks, doc.text.index("The median arsenic"))
        assert isinstance(where, Mark) and where.section == "Results > Table 2"
