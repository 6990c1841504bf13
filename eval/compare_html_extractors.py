"""Which extractor keeps a saved news page's article and drops the rest?

Runs qa's previous loader (every text block but <nav>/<header>/<footer>, BeautifulSoup),
trafilatura (qa's loader now) and readability-lxml over the saved pages in
tests/data/saved-pages/ (written for this project: navigation, cookie banners, related links,
comments, ads), and counts, per page, the article snippets kept, the boilerplate snippets
leaked and the metadata found, as listed in that folder's expected.json.

    PYTHONPATH=. .venv/bin/python eval/compare_html_extractors.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from qa.sources import ingest

PAGES = Path(__file__).resolve().parents[1] / "tests" / "data" / "saved-pages"
Extracted = tuple[str, str | None, str | None, str | None]  # text, title, author, date


def blocks(data: bytes) -> Extracted:
    parsed = ingest._load_html_blocks(data)
    return ingest.assemble(parsed.parts)[0], parsed.title, parsed.author, parsed.date


def trafilatura(data: bytes) -> Extracted:
    parsed = ingest._load_html(data)
    return ingest.assemble(parsed.parts)[0], parsed.title, parsed.author, parsed.date


def readability(data: bytes) -> Extracted:
    import lxml.html
    from readability import Document

    page = Document(data)
    text = lxml.html.fromstring(page.summary(html_partial=True)).text_content()
    return text, page.short_title(), None, None  # it gives no author or date


EXTRACTORS: dict[str, Callable[[bytes], Extracted]] = {
    "blocks (qa before, BeautifulSoup)": blocks,
    "trafilatura 2 (qa now)": trafilatura,
    "readability-lxml": readability,
}


def main() -> None:
    expected = json.loads((PAGES / "expected.json").read_text(encoding="utf-8"))
    pages = {k: v for k, v in expected.items() if k.endswith(".html")}
    print("| extractor | article kept | boilerplate leaked | title, author, date right |")
    print("|---|---|---|---|")
    for name, extract in EXTRACTORS.items():
        kept = keep_total = leaked = drop_total = meta = 0
        for page, want in pages.items():
            text, title, author, date = extract((PAGES / page).read_bytes())
            flat = " ".join(text.split())
            kept += sum(" ".join(k.split()) in flat for k in want["keep"])
            leaked += sum(" ".join(d.split()) in flat for d in want["drop"])
            keep_total, drop_total = keep_total + len(want["keep"]), drop_total + len(want["drop"])
            right = (want["title"], want["author"], want["date"])
            meta += sum(g == w for g, w in zip((title, author, date), right, strict=True))
        print(f"| {name} | {kept}/{keep_total} | {leaked}/{drop_total} | {meta}/{3 * len(pages)} |")


if __name__ == "__main__":
    main()
