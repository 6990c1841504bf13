"""`qa bench ocr`: seconds per scanned page through `ingest.load`, beside its floor.

The pages are text of a corpus document drawn onto A4 images at 300 dpi (Pillow) and saved as an
image-only PDF, a scan. The floor is Tesseract alone on those same page images; the pipeline is
`ingest.load` of the PDF (pypdf finds no text layer, pdftoppm renders each page, Tesseract reads
it). Word recall says how much of the drawn text came back.
"""

from __future__ import annotations

import re
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from qa.eval.report import markdown_table, run_info
from qa.eval.timing import Say, context_line, quiet
from qa.sources import ingest, ocr

LINES_PER_PAGE = 40
CHARS_PER_LINE = 70


def page_images(text: str, pages: int) -> list[Any]:
    """`pages` A4 images at 300 dpi holding the text, wrapped, 40 lines a page."""
    from PIL import Image, ImageDraw, ImageFont

    lines = [ln for para in text.split("\n") for ln in textwrap.wrap(para, CHARS_PER_LINE)]
    font = ImageFont.load_default(size=48)
    images = []
    for n in range(pages):
        image = Image.new("L", (2480, 3508), 255)
        draw = ImageDraw.Draw(image)
        chunk = lines[n * LINES_PER_PAGE : (n + 1) * LINES_PER_PAGE]
        for i, line in enumerate(chunk):
            draw.text((200, 250 + 75 * i), line, fill=0, font=font)
        images.append((image, " ".join(chunk)))
    return images


def bench_ocr(source: Path, pages: int = 3, say: Say = quiet) -> dict[str, Any]:
    """OCR seconds per page: Tesseract alone (floor) and the whole loader, on the same pages."""
    import pytesseract

    if ocr.missing():
        raise ingest.LoadError(f"OCR needs {', '.join(ocr.missing())}: {ocr.INSTALL}")
    text = ingest.load(source, source.name).text
    drawn = page_images(text, pages)
    with tempfile.TemporaryDirectory(prefix="qa-bench-ocr-") as tmp:
        images_on_disk = []
        for n, (image, _) in enumerate(drawn):
            images_on_disk.append(Path(tmp) / f"page-{n + 1}.pgm")  # what pdftoppm gives Tesseract
            image.save(images_on_disk[-1], dpi=(300, 300))
        pdf = Path(tmp) / "scan.pdf"
        images = [image for image, _ in drawn]
        images[0].save(pdf, save_all=True, append_images=images[1:], resolution=300)
        say(f"floor: Tesseract alone on {pages} page images")
        t0 = time.perf_counter()
        for page_file in images_on_disk:
            pytesseract.image_to_string(str(page_file), lang=ocr.LANGUAGE)
        floor_s = time.perf_counter() - t0
        say(f"pipeline: ingest.load of the {pages}-page scanned PDF")
        t0 = time.perf_counter()
        doc = ingest.load(pdf, pdf.name, on_page=lambda d, t: say(f"  OCR page {d}/{t}"))
        load_s = time.perf_counter() - t0
    words = _words(" ".join(t for _, t in drawn))
    found = set(_words(doc.text))
    return {
        "source": str(source),
        "pages": pages,
        "floor_s_per_page": floor_s / pages,
        "load_s_per_page": load_s / pages,
        "ratio_floor_over_load": floor_s / load_s,
        "word_recall": sum(w in found for w in words) / max(1, len(words)),
        "pages_marked_ocr": sorted({m.page for m in doc.marks if m.ocr and m.page}),
        "info": run_info(),
    }


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def format_ocr(r: dict[str, Any]) -> str:
    rows = [
        ["floor: Tesseract alone on the page image (s/page)", f"{r['floor_s_per_page']:.2f}"],
        ["ingest.load of the scanned PDF (s/page)", f"{r['load_s_per_page']:.2f}"],
        ["ratio floor / load", f"{r['ratio_floor_over_load']:.3f}"],
        ["words of the drawn text read back", f"{r['word_recall']:.1%}"],
    ]
    return (
        f"{context_line(r)}\n{r['pages']} pages of {Path(r['source']).name}\n\n"
        + markdown_table(["measure", "value"], rows)
    )
