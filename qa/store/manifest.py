"""What every store records of how an index was built (format, model, dim, documents), the
check that an index matches what reads it, and the text each chunk is embedded as."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qa.errors import IndexMismatch, IndexMissing

FORMAT = 1


def embed_text(title: str, text: str) -> str:
    """What the encoder and BM25 see for a chunk: the document title carries its topic."""
    return f"{title}\n{text}" if title else text


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(path) / "manifest.json").read_text())
    except FileNotFoundError as exc:
        raise IndexMissing(f"{path} has no manifest.json; rebuild it with `qa index`") from exc


def check_manifest(
    manifest: dict[str, Any], model: str | None, dim: int | None, where: Path | str
) -> None:
    """Raise IndexMismatch when the index was built differently from what is asked."""
    if manifest.get("format") != FORMAT:
        raise IndexMismatch(
            f"{where} has index format {manifest.get('format')!r}, this qa reads format {FORMAT};"
            " rebuild it: delete the folder and run `qa index` again"
        )
    if model is not None and manifest.get("model") != model:
        raise IndexMismatch(
            f"{where} was built with model {manifest.get('model')!r}, not {model!r};"
            " use a new --index folder or delete this one and re-index"
        )
    if dim is not None and manifest.get("dim") != dim:
        raise IndexMismatch(f"{where} has {manifest.get('dim')}-d vectors, the model makes {dim}")
