"""Read files into Documents: full normalized text plus title, date, place, author, pages and
sections, and a content hash.

One loader per format, each built on a well-kept library: trafilatura (the article of a saved
web page, with its title, author and date; BeautifulSoup when a page is too short for it), pypdf
(PDF, a page at a time; pages without a text layer are OCR'd by `qa.sources.ocr`), python-docx
(DOCX), markdown-it-py (where Markdown headings are). Plain text is read as UTF-8.

A loader returns the document as parts (a page, or the text under one heading); each part is
normalized on its own and the parts are joined by an empty line, so a page or section starts at
a known offset of the final text: that offset, with its page number or heading path, is a Mark.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import InvalidInput
from qa.records import Document, Mark

if TYPE_CHECKING:
    from lxml.etree import _Element

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
# Bump when what a loader extracts changes (text, title, date, marks): indexes built by an older
# version are re-read and re-embedded on the next `qa index`, even for unchanged files.
# 3: pages and sections (marks), saved web pages by trafilatura, OCR of scanned PDF pages.
# 4: a plain-text file whose first line reads as a title has it as its title.
VERSION = 4

OnPage = Callable[[int, int], None]  # (pages OCR'd so far, pages to OCR)


class LoadError(InvalidInput):
    """A file that cannot be turned into a Document; the message names the reason."""


@dataclass(frozen=True)
class SourceFile:
    """A file to index and the id it will have (its path relative to the indexed root)."""

    path: Path
    doc_id: str


@dataclass(frozen=True)
class Part:
    """A stretch of a document on one page or under one heading path, before normalization."""

    text: str
    page: int | None = None
    section: str | None = None
    ocr: bool = False


@dataclass(frozen=True)
class Parsed:
    """What a format loader extracts: the document's parts in reading order, and metadata."""

    parts: Sequence[Part]
    title: str | None = None
    date: str | None = None
    author: str | None = None


def content_hash(data: bytes) -> str:
    """The version of a document: sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def discover(paths: Iterable[Path]) -> tuple[list[SourceFile], list[Path]]:
    """Supported files under `paths` (recursive), and the folders that were walked.

    A file named directly gets its file name as id (its path as given when another named file
    has the same name: `README.md` and `eval/README.md`); a file found in a folder gets its path
    relative to that folder. Hidden files and folders are skipped.
    """
    paths = [Path(p) for p in paths]
    names = Counter(p.name for p in paths if p.is_file())
    found: dict[str, SourceFile] = {}
    roots: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise InvalidInput(f"{path}: no such file or folder")
        if path.is_dir():
            roots.append(path)
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(path)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if file.is_file() and file.suffix.lower() in SUPPORTED:
                    found.setdefault(rel.as_posix(), SourceFile(file, rel.as_posix()))
        else:
            doc_id = path.name if names[path.name] == 1 else path.as_posix()
            found.setdefault(doc_id, SourceFile(path, doc_id))
    return list(found.values()), roots


def load(
    path: Path,
    doc_id: str,
    data: bytes | None = None,
    max_bytes: int | None = None,
    on_page: OnPage | None = None,
) -> Document:
    """Read one file into a Document, or raise LoadError saying why it cannot be used.

    `on_page` hears of each scanned PDF page as OCR reads it (it takes seconds a page).
    """
    suffix = path.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise LoadError(f"unsupported file type {suffix or '(none)'}; use {', '.join(SUPPORTED)}")
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LoadError(f"cannot read: {exc.strerror or exc}") from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise LoadError(f"too large ({len(data) / 1e6:.1f} MB; limit {max_bytes / 1e6:.0f} MB)")
    if not data.strip():
        raise LoadError("empty file")
    try:
        parsed = _load_pdf(data, on_page) if suffix == ".pdf" else loader(data)
    except LoadError:
        raise
    except Exception as exc:  # a corrupt file makes parsers fail in many ways
        raise LoadError(f"cannot parse {suffix} file: {type(exc).__name__}: {exc}") from exc
    full, marks = assemble(parsed.parts)
    text, date, place = _dateline(full)
    if not text:
        raise LoadError("no text found in the file")
    title = (
        (parsed.title or "").strip()
        or (_title_line(text) if suffix == ".txt" and not place else None)  # not "Place: …"
        or _title_from_name(path)
    )
    return Document(
        id=doc_id,
        text=text,
        title=normalize(title),
        source=str(path),
        hash=content_hash(data),
        date=parsed.date or date,
        place=place,
        author=normalize(parsed.author) if parsed.author else None,
        marks=_shift(marks, len(full) - len(text)),
    )


def assemble(parts: Iterable[Part]) -> tuple[str, tuple[Mark, ...]]:
    """The normalized text of `parts`, joined by empty lines, and where each page or section
    starts in it. A mark is set where the location changes; plain text has none."""
    pieces: list[str] = []
    marks: list[Mark] = []
    at = 0
    where: tuple[int | None, str | None, bool] = (None, None, False)
    for part in parts:
        text = normalize(part.text)
        if not text:
            continue
        if pieces:
            at += 2  # the "\n\n" before this part
        if (part.page, part.section, part.ocr) != where:
            where = (part.page, part.section, part.ocr)
            marks.append(Mark(at, *where))
        pieces.append(text)
        at += len(text)
    return "\n\n".join(pieces), tuple(marks)


def _shift(marks: tuple[Mark, ...], cut: int) -> tuple[Mark, ...]:
    """Marks of a text whose first `cut` characters were taken away (a dateline)."""
    if not cut:
        return marks
    moved = [Mark(max(0, m.start - cut), m.page, m.section, m.ocr) for m in marks]
    return tuple(
        m for i, m in enumerate(moved) if i + 1 == len(moved) or moved[i + 1].start > m.start
    )


def normalize(text: str) -> str:
    """NFC, one kind of newline and space, no trailing blanks, at most one empty line in a row."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\t", " ").replace("\u200b", "")
    text = re.sub(r"[ \f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


_DATELINE = re.compile(r"^date\s+(\d{4}-\d{2}-\d{2})\s+(?:([A-Z][\w.,' -]{0,60}?):\s)?")


def _dateline(text: str) -> tuple[str, str | None, str | None]:
    """Take a leading `date YYYY-MM-DD Place:` marker as metadata; keep the dateline's place."""
    match = _DATELINE.match(text)
    if not match or not _valid_date(match.group(1)):
        return text, None, None
    return text[len("date ") + 10 :].lstrip(), match.group(1), match.group(2)


def _valid_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


_TITLE_MAX_CHARS = 120
_TITLE_MAX_WORDS = 16


def _title_line(text: str) -> str | None:
    """A plain text's first line when it reads as a title: followed by more text, short, with
    letters, not a list item, and not ending like a sentence or a clause ("Quillton festival
    report", not "The festival takes place in March.")."""
    first, newline, rest = text.partition("\n")
    line = first.strip()
    if not newline or not rest.strip() or not line:
        return None
    if len(line) > _TITLE_MAX_CHARS or len(line.split()) > _TITLE_MAX_WORDS:
        return None
    if line[-1] in ".,;:" or line[0] in "-*•+>|" or not any(ch.isalpha() for ch in line):
        return None
    return line


def _title_from_name(path: Path) -> str:
    """A title from a file name: "reko-diq-exim-2026-02-06.txt" gives "Reko Diq Exim"."""
    title = re.sub(r"[_\s]+", " ", path.stem).strip()
    if title.islower():
        title = re.sub(r"[-\s]*\d{4}-\d{2}-\d{2}$", "", title)  # the date is metadata
        title = " ".join(w[:1].upper() + w[1:] for w in re.split(r"[-\s]+", title) if w)
    return title or path.name


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"not UTF-8 text (byte {exc.start}); convert it, e.g. `iconv -t UTF-8`"
        ) from exc


def _load_text(data: bytes) -> Parsed:
    return Parsed([Part(_decode(data))])


@dataclass(frozen=True)
class _Block:
    """A block of text in reading order; a heading has its level (1-6) and its plain name."""

    text: str
    level: int | None = None
    name: str = ""


def _sections(blocks: Sequence[_Block], titled: bool = False) -> list[Part]:
    """Parts under their heading path ("Results > Table 2"), from blocks in reading order.

    Unless the document has a title of its own (`titled`), a first heading that is its only
    level-1 heading is the title: it is left out of the paths, so "Report > Results" reads
    "Results".
    """
    heads = [b for b in blocks if b.level is not None and b.name]
    title = None
    if not titled and heads and heads[0].level == 1 and sum(h.level == 1 for h in heads) == 1:
        title = heads[0]
    path: list[tuple[int, str]] = []
    parts = []
    for block in blocks:
        if block.level is not None and block.name and block is not title:
            path = [(lv, name) for lv, name in path if lv < block.level]
            path.append((block.level, block.name))
        parts.append(Part(block.text, section=" > ".join(name for _, name in path) or None))
    return parts


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_INLINE_MARKUP = re.compile(r"\[([^\]]*)\]\([^)]*\)|[*_`]+")


def _load_markdown(data: bytes) -> Parsed:
    from markdown_it import MarkdownIt

    text = _decode(data).replace("\r\n", "\n")
    title = date = None
    front = _FRONT_MATTER.match(text)
    if front:
        text = text[front.end() :]
        for line in front.group(1).splitlines():
            key, _, value = line.partition(":")
            value = value.strip().strip("\"'")
            if key.strip().lower() == "title":
                title = value
            elif key.strip().lower() == "date":
                date = _iso_date(value)
    # The text is kept as written; the parser only says which lines are headings (a "# note"
    # in a code block is not one).
    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").parse(text)
    blocks: list[_Block] = []
    at = 0
    for n, token in enumerate(tokens):
        if token.type != "heading_open" or token.map is None:
            continue
        first, last = token.map
        name = " ".join(
            _INLINE_MARKUP.sub(lambda m: m.group(1) or "", tokens[n + 1].content).split()
        )
        blocks.append(_Block("\n".join(lines[at:first])))
        blocks.append(_Block("\n".join(lines[first:last]), int(token.tag[1:]), name))
        at = last
        if title is None and token.tag == "h1" and name:
            title = name
    blocks.append(_Block("\n".join(lines[at:])))
    return Parsed(_sections(blocks), title, date)


# An article's text below this many characters means the extractor found no article (its own
# threshold, MIN_EXTRACTED_SIZE); such a page is read block by block instead.
_MIN_ARTICLE_CHARS = 250


def _load_html(data: bytes) -> Parsed:
    """A saved web page: its article (trafilatura), without menus, banners, links and comments."""
    import trafilatura

    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes), not HTML")
    found = trafilatura.bare_extraction(
        data, with_metadata=True, include_comments=False, include_tables=True
    )
    body = getattr(found, "body", None)
    blocks = _article_blocks(body) if body is not None else []
    if sum(len(b.text) for b in blocks) < _MIN_ARTICLE_CHARS:
        return _load_html_blocks(data)
    return Parsed(_sections(blocks), found.title, _iso_date(found.date or ""), found.author)


def _article_blocks(body: _Element) -> list[_Block]:
    """Blocks of trafilatura's XML: head (rend="h2"), p, list/item, table/row/cell, quote..."""
    for br in body.iter("lb"):
        br.tail = "\n" + (br.tail or "")
    blocks = []
    for element in body:
        if element.tag == "head":
            name = " ".join("".join(element.itertext()).split())
            rend = element.get("rend") or "h2"
            level = int(rend[1]) if re.fullmatch(r"h[1-6]", rend) else 2
            blocks.append(_Block(name, level, name))
        elif element.tag == "list":
            blocks += [_Block("".join(i.itertext())) for i in element.iter("item")]
        elif element.tag == "table":
            for row in element.iter("row"):
                cells = [" ".join("".join(c.itertext()).split()) for c in row.iter("cell")]
                blocks.append(_Block(" | ".join(cells)))
        else:
            blocks.append(_Block("".join(element.itertext())))
    return blocks


_DATE_META = (
    "article:published_time",
    "og:published_time",
    "datepublished",
    "date",
    "pubdate",
    "publish-date",
    "dc.date",
    "dc.date.issued",
    "dcterms.created",
    "article:modified_time",
)
_BLOCK_TAGS = ["p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "td", "th"]


def _load_html_blocks(data: bytes) -> Parsed:
    """A page too short for an article extractor: every text block but scripts, menus, header
    and footer (BeautifulSoup)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "lxml")
    metas: dict[str, str] = {}
    for meta in soup.find_all("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").lower()
        if key and meta.get("content"):
            metas.setdefault(key, meta["content"])
    title = metas.get("og:title") or (soup.title.get_text() if soup.title else None)
    date = next((_iso_date(metas[k]) for k in _DATE_META if k in metas), None)
    if date is None and (time := soup.find("time", attrs={"datetime": True})):
        date = _iso_date(time["datetime"])
    for tag in soup(["script", "style", "noscript", "template", "nav", "header", "footer"]):
        tag.decompose()
    body = soup.body or soup
    blocks = []
    for tag in body.find_all(_BLOCK_TAGS):
        text = tag.get_text(" ", strip=True)
        level = int(tag.name[1]) if re.fullmatch(r"h[1-6]", tag.name) else None
        if text:
            blocks.append(_Block(text, level, text if level else ""))
    blocks = _dedupe_nested(blocks) or [_Block(body.get_text("\n", strip=True))]
    return Parsed(_sections(blocks), title, date, metas.get("author"))


def _dedupe_nested(blocks: list[_Block]) -> list[_Block]:
    """Drop a block whose text repeats the block before it (an <li> holding a <p>, say)."""
    kept: list[_Block] = []
    for block in blocks:
        if kept and (block.text in kept[-1].text or kept[-1].text in block.text):
            if len(block.text) > len(kept[-1].text):
                kept[-1] = block
            continue
        kept.append(block)
    return kept


# Tesseract ends a line with "\n" and a paragraph with "\n\n"; lines are joined back.
_OCR_LINE_BREAK = re.compile(r"(?<=\S)\n(?=\S)")
# A page with fewer characters than this in its text layer, and an image, is a scanned page.
_MIN_PAGE_CHARS = 20


def _load_pdf(data: bytes, on_page: OnPage | None = None) -> Parsed:
    """A PDF page by page; scanned pages (an image, no text layer) are read by OCR."""
    import io

    from pypdf import PdfReader

    from qa.sources import ocr

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise LoadError("encrypted PDF; remove the password and index it again")
    texts = [page.extract_text() or "" for page in reader.pages]
    scanned = [
        n
        for n, (page, text) in enumerate(zip(reader.pages, texts, strict=True))
        if len(text.strip()) < _MIN_PAGE_CHARS and len(page.images) > 0
    ]
    if scanned:
        missing = ocr.missing()
        if missing:
            has, needs = ("has", "needs") if len(scanned) == 1 else ("have", "need")
            raise LoadError(
                f"scanned PDF: {_pages(scanned)} of {len(texts)} {has} no text layer and {needs}"
                f" OCR, but this machine lacks {' and '.join(missing)}; install them with"
                f" `{ocr.INSTALL}` and index it again"
            )
        pages = ocr.read_pages(data, [n + 1 for n in scanned])
        for done, (n, text) in enumerate(zip(scanned, pages, strict=True)):
            texts[n] = _OCR_LINE_BREAK.sub(" ", text)  # a sentence is not cut where a line ends
            if on_page:
                on_page(done + 1, len(scanned))
    ocred = set(scanned)
    parts = [Part(t, page=n + 1, ocr=n in ocred) for n, t in enumerate(texts)]
    info = reader.metadata or {}
    title = info.get("/Title")
    author = info.get("/Author")
    date = _pdf_date(info.get("/CreationDate") or info.get("/ModDate"))
    return Parsed(parts, str(title) if title else None, date, str(author) if author else None)


def _pages(numbers: Sequence[int]) -> str:
    """ "page 3" or "pages 1, 2, 5" (1-based) from 0-based page numbers."""
    shown = ", ".join(str(n + 1) for n in numbers[:10]) + (", ..." if len(numbers) > 10 else "")
    return f"page{'s' if len(numbers) > 1 else ''} {shown}"


def _load_docx(data: bytes) -> Parsed:
    """Paragraphs and tables in document order; "Heading N" styles make the sections."""
    import io

    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(data))
    blocks: list[_Block] = []
    title = document.core_properties.title
    titled = False
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                blocks.append(_Block(" | ".join(cell.text.strip() for cell in row.cells)))
            continue
        style = item.style.name if item.style is not None else ""
        level = re.fullmatch(r"Heading ([1-9])", style or "")
        name = " ".join(item.text.split())
        if style == "Title" and name:
            title, titled = title or name, True
            blocks.append(_Block(item.text))
        else:
            blocks.append(_Block(item.text, int(level.group(1)) if level else None, name))
    props = document.core_properties
    stamp = props.created or props.modified
    return Parsed(
        _sections(blocks, titled),
        title,
        stamp.date().isoformat() if stamp else None,
        props.author or None,
    )


def _pdf_date(value: object) -> str | None:
    match = re.match(r"D:(\d{4})(\d{2})(\d{2})", str(value or ""))
    if not match:
        return None
    date = "-".join(match.groups())
    return date if _valid_date(date) else None


def _iso_date(value: str) -> str | None:
    match = re.search(r"(\d{4})-(\d{2})-(\d{2})", value)
    if match and _valid_date(match.group(0)):
        return match.group(0)
    return None


_LOADERS: dict[str, Callable[[bytes], Parsed]] = {
    ".txt": _load_text,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,  # called with the OCR progress callback
    ".docx": _load_docx,
}
