"""Read files into Documents: full normalized text plus title, date, place and content hash.

One loader per format, each built on a well-kept library: BeautifulSoup (HTML), pypdf (PDF),
python-docx (DOCX). Plain text and Markdown are read as UTF-8.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qa.errors import InvalidInput
from qa.models import Document

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
# Bump when what a loader extracts changes (text, title, date): indexes built by an older
# version are re-read and re-embedded on the next `qa index`, even for unchanged files.
VERSION = 2


class LoadError(InvalidInput):
    """A file that cannot be turned into a Document; the message names the reason."""


@dataclass(frozen=True)
class SourceFile:
    """A file to index and the id it will have (its path relative to the indexed root)."""

    path: Path
    doc_id: str


@dataclass(frozen=True)
class Parsed:
    """What a format loader extracts before normalization."""

    text: str
    title: str | None = None
    date: str | None = None


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
    path: Path, doc_id: str, data: bytes | None = None, max_bytes: int | None = None
) -> Document:
    """Read one file into a Document, or raise LoadError saying why it cannot be used."""
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
        parsed = loader(data)
    except LoadError:
        raise
    except Exception as exc:  # a corrupt file makes parsers fail in many ways
        raise LoadError(f"cannot parse {suffix} file: {type(exc).__name__}: {exc}") from exc
    text, date, place = _dateline(normalize(parsed.text))
    if not text:
        raise LoadError("no text found in the file")
    title = (parsed.title or "").strip() or _title_from_name(path)
    return Document(
        id=doc_id,
        text=text,
        title=normalize(title),
        source=str(path),
        hash=content_hash(data),
        date=parsed.date or date,
        place=place,
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
    return Parsed(_decode(data))


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def _load_markdown(data: bytes) -> Parsed:
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
    heading = re.search(r"^#\s+(.+)$", text, re.M)
    return Parsed(text, title or (heading.group(1) if heading else None), date)


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


def _load_html(data: bytes) -> Parsed:
    from bs4 import BeautifulSoup

    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes), not HTML")
    soup = BeautifulSoup(data, "lxml")
    metas = {}
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
    blocks = [b.get_text(" ", strip=True) for b in body.find_all(_BLOCK_TAGS)]
    blocks = [b for b in blocks if b]
    text = "\n\n".join(_dedupe_nested(blocks)) if blocks else body.get_text("\n", strip=True)
    return Parsed(text, title, date)


_BLOCK_TAGS = ["p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "td", "th"]


def _dedupe_nested(blocks: list[str]) -> list[str]:
    """Drop a block whose text repeats the block before it (an <li> holding a <p>, say)."""
    kept: list[str] = []
    for block in blocks:
        if kept and (block in kept[-1] or kept[-1] in block):
            if len(block) > len(kept[-1]):
                kept[-1] = block
            continue
        kept.append(block)
    return kept


def _load_pdf(data: bytes) -> Parsed:
    import io

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise LoadError("encrypted PDF; remove the password and index it again")
    pages = [page.extract_text() or "" for page in reader.pages]
    info = reader.metadata or {}
    title = info.get("/Title")
    date = _pdf_date(info.get("/CreationDate") or info.get("/ModDate"))
    return Parsed("\n\n".join(p.strip() for p in pages), str(title) if title else None, date)


def _load_docx(data: bytes) -> Parsed:
    import io

    import docx

    document = docx.Document(io.BytesIO(data))
    paragraphs = [p.text for p in document.paragraphs if p.text.strip()]
    for table in document.tables:
        for row in table.rows:
            paragraphs.append(" | ".join(cell.text.strip() for cell in row.cells))
    props = document.core_properties
    stamp = props.created or props.modified
    return Parsed("\n\n".join(paragraphs), props.title, stamp.date().isoformat() if stamp else None)


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
    ".pdf": _load_pdf,
    ".docx": _load_docx,
}
