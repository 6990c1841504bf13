"""Each loader on a fixture the test makes itself, the seed article's metadata, and bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from qa.sources.ingest import LoadError, discover, load, normalize
from tests.conftest import require_seed_article


def test_seed_article_dateline_becomes_metadata():
    doc = load(require_seed_article(), "seed.txt")
    assert doc.date == "2026-02-06"
    assert doc.place == "Washington"
    assert doc.text.startswith("Washington: The US State Department listed")
    assert "date 2026" not in doc.text
    assert doc.title == "Reko Diq Exim"
    assert len(doc.hash) == 64


@pytest.mark.parametrize(
    ("text", "title"),
    [
        (
            "Quillton festival report\n\nThe festival takes place in March.",
            "Quillton festival report",
        ),
        (
            "date 2024-05-01 Harwick: Harbour news\nThe ferry runs again.",
            None,
        ),  # a place, not a title
        (
            "date 2024-05-01\nHarbour reopens after storm\n\nThe harbour is open.",
            "Harbour reopens after storm",
        ),
        ("The festival takes place in March.\nIt is old.", None),  # a sentence
        ("Agenda:\n- budget\n- roads", None),
        ("- first item\n- second item", None),
        ("2024\n\nA year of records.", None),  # no letters
        ("Only one line, no title", None),
        (" ".join(["word"] * 20) + "\nmore", None),  # too long for a title
    ],
)
def test_a_plain_text_title_is_its_first_line_when_it_reads_as_one(tmp_path, text, title):
    path = tmp_path / "reko-diq-notes.txt"
    path.write_text(text, encoding="utf-8")
    assert load(path, path.name).title == (title or "Reko Diq Notes")


def test_html_title_meta_date_and_text_without_scripts(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        """<html><head><title>Mine news</title>
        <meta property="article:published_time" content="2025-09-14T10:00:00Z">
        <script>var hidden = "do not index";</script></head>
        <body><nav>Home | About</nav><h1>Copper deal</h1>
        <p>The bank lent <b>$5 million</b> to the mine.</p><ul><li>Point one.</li></ul></body>
        </html>""",
        encoding="utf-8",
    )
    doc = load(page, "page.html")
    assert doc.title == "Mine news"
    assert doc.date == "2025-09-14"
    assert "The bank lent $5 million to the mine." in doc.text
    assert "do not index" not in doc.text and "Home | About" not in doc.text


def test_pdf_text_title_and_creation_date(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Annual report")
    pdf.set_creation_date(dt.datetime(2024, 3, 5, tzinfo=dt.UTC))
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, "Revenue rose to 12 million dollars in 2023. Costs fell.")
    path = tmp_path / "report.pdf"
    pdf.output(str(path))
    doc = load(path, "report.pdf")
    assert doc.title == "Annual report"
    assert doc.date == "2024-03-05"
    assert "Revenue rose to 12 million dollars in 2023." in doc.text


def test_docx_paragraphs_tables_and_core_properties(tmp_path):
    import docx

    document = docx.Document()
    document.core_properties.title = "Board minutes"
    document.core_properties.created = dt.datetime(2023, 11, 2, 9, 0)
    document.add_paragraph("The board approved the budget.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Budget"
    table.rows[0].cells[1].text = "4 million"
    path = tmp_path / "minutes.docx"
    document.save(path)
    doc = load(path, "minutes.docx")
    assert doc.title == "Board minutes"
    assert doc.date == "2023-11-02"
    assert "The board approved the budget." in doc.text
    assert "Budget | 4 million" in doc.text


def test_markdown_front_matter_and_heading(tmp_path):
    path = tmp_path / "note.md"
    path.write_text("---\ntitle: Field notes\ndate: 2022-01-31\n---\n# Ignored\nText here.\n")
    doc = load(path, "note.md")
    assert (doc.title, doc.date) == ("Field notes", "2022-01-31")
    path.write_text("# Heading title\n\nBody.")
    assert load(path, "note.md").title == "Heading title"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"  \n\n ", "empty"),
        ("binary.txt", b"\x00\x01\x02binary", "binary"),
        ("latin1.txt", "café olé".encode("latin-1"), "not UTF-8"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "cannot parse"),
        ("broken.docx", b"PK\x03\x04 not a zip", "cannot parse"),
        ("image.png", b"\x89PNG", "unsupported file type"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(LoadError, match=reason):
        load(path, name)


def test_too_large_file_is_refused(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(LoadError, match="too large"):
        load(path, "big.txt", max_bytes=100)


def test_discover_gives_relative_ids_and_skips_hidden_and_unsupported(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("A.")
    (tmp_path / "b.md").write_text("B.")
    (tmp_path / ".hidden.txt").write_text("H.")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    files, roots = discover([tmp_path])
    assert sorted(f.doc_id for f in files) == ["b.md", "sub/a.txt"]
    assert roots == [tmp_path]
    single, roots = discover([tmp_path / "sub" / "a.txt"])
    assert [f.doc_id for f in single] == ["a.txt"] and roots == []


def test_named_files_with_the_same_name_keep_their_paths_as_ids(tmp_path, monkeypatch):
    """`qa index README.md eval/README.md` (the sample corpus) indexes both, not one."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "eval").mkdir()
    Path("README.md").write_text("# qa", encoding="utf-8")
    Path("eval/README.md").write_text("# Evaluation sets", encoding="utf-8")
    Path("notes.txt").write_text("Notes.", encoding="utf-8")
    files, _ = discover([Path("README.md"), Path("eval/README.md"), Path("notes.txt")])
    assert [f.doc_id for f in files] == ["README.md", "eval/README.md", "notes.txt"]


def test_normalize_unifies_newlines_and_spaces():
    assert normalize("a\r\nb\u00a0c  d \n\n\n\ne\t") == "a\nb c d\n\ne"
