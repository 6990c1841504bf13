"""qa: answers with sources. Offline question answering over your own documents.

The Python API: build an index with `index_paths`, then ask an `Engine`:

    from pathlib import Path
    from qa import Engine, default_embedder, index_paths

    embedder = default_embedder()
    index_paths([Path("my-docs")], Path("index/mine"), embedder)
    answer = Engine(Path("index/mine"), embedder).ask("Who designed the bridge?")
    for c in answer.citations:  # every quote is document.text[c.start:c.end]
        print(c.n, c.doc_id, c.start, c.end, c.quote)

The names below load on first use, so `import qa` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "Engine": "qa.engine",
    "Settings": "qa.config",
    "get_settings": "qa.config",
    "default_embedder": "qa.encoders.embedding",
    "Embedder": "qa.encoders.embedding",
    "index_paths": "qa.indexing",
    "IndexReport": "qa.indexing",
    "Filters": "qa.retrieval.search",
    "Answer": "qa.records",
    "Citation": "qa.records",
    "Passage": "qa.records",
    "Document": "qa.records",
    "Chunk": "qa.records",
    "Mark": "qa.records",
    "IndexStatus": "qa.records",
    "QAError": "qa.errors",
    "InvalidInput": "qa.errors",
    "NotFound": "qa.errors",
    "IndexMissing": "qa.errors",
    "IndexMismatch": "qa.errors",
}
__all__ = [  # spelled out for linters and type checkers: the keys of _EXPORTS
    "Answer",
    "Chunk",
    "Citation",
    "Document",
    "Embedder",
    "Engine",
    "Filters",
    "IndexMismatch",
    "IndexMissing",
    "IndexReport",
    "IndexStatus",
    "InvalidInput",
    "Mark",
    "NotFound",
    "Passage",
    "QAError",
    "Settings",
    "__version__",
    "default_embedder",
    "get_settings",
    "index_paths",
]

if TYPE_CHECKING:
    from qa.config import Settings, get_settings
    from qa.encoders.embedding import Embedder, default_embedder
    from qa.engine import Engine
    from qa.errors import IndexMismatch, IndexMissing, InvalidInput, NotFound, QAError
    from qa.indexing import IndexReport, index_paths
    from qa.records import Answer, Chunk, Citation, Document, IndexStatus, Mark, Passage
    from qa.retrieval.search import Filters


def __getattr__(name: str) -> Any:
    """`from qa import Engine` imports qa.engine then, not when any part of qa is imported."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
