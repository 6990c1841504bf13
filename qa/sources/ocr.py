"""OCR of scanned PDF pages: poppler's `pdftoppm` renders a page, Tesseract reads it.

Both come from Debian packages (`make install` and `.ci/run` install them when missing);
pytesseract runs the `tesseract` program. Pages are rendered at 300 dpi in grey, the resolution
Tesseract is tuned for, as uncompressed PGM (PNG's compression took longer than the rendering).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

INSTALL = "sudo apt-get install tesseract-ocr tesseract-ocr-eng poppler-utils"
DPI = 300
LANGUAGE = "eng"


def missing() -> list[str]:
    """What OCR needs and this machine lacks: programs not on PATH, Tesseract's English data."""
    import pytesseract

    lacking = [tool for tool in ("tesseract", "pdftoppm") if shutil.which(tool) is None]
    if "tesseract" not in lacking and LANGUAGE not in pytesseract.get_languages(config=""):
        lacking.append(f"Tesseract's '{LANGUAGE}' language data (tesseract-ocr-{LANGUAGE})")
    return lacking


def read_pages(pdf: bytes, pages: Sequence[int]) -> Iterator[str]:
    """The text of each page (1-based) of a PDF, read by OCR one page at a time, in order."""
    import pytesseract

    with tempfile.TemporaryDirectory(prefix="qa-ocr-") as tmp:
        source = Path(tmp) / "in.pdf"
        source.write_bytes(pdf)
        for page in pages:
            image = Path(tmp) / f"page-{page}"
            subprocess.run(
                ["pdftoppm", "-f", str(page), "-l", str(page), "-r", str(DPI), "-gray"]
                + ["-singlefile", str(source), str(image)],
                check=True,
                capture_output=True,
                timeout=300,
            )
            pgm = image.with_suffix(".pgm")
            yield pytesseract.image_to_string(str(pgm), lang=LANGUAGE)
            pgm.unlink()
