"""The store interface: where an index lives, how retrieval reads it and how indexing writes it.

Two implementations: the index folder (`qa/store/folder.py`: FAISS, SQLite, bm25s;
the default) and Milvus (`qa/store/milvus.py`, Milvus Lite in a file or a Milvus server by
URL). Retrieval, answering, the engine, indexing and the service see only these two protocols, so
offsets, ids
and the verbatim guarantee are the interface's contract, not a property of one store.

Chunks are addressed by an integer `row` that the store chooses (the FAISS position in a
folder, the primary key in Milvus); a row means the same chunk for as long as a view lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from qa.records import Chunk, Document, Mark


class IndexView(Protocol):
    """One consistent version of an index, as retrieval and answering read it."""

    manifest: dict[str, Any]  # what built it; "documents": id -> title, date, source, ...

    @property
    def version(self) -> str: ...

    @property
    def n_chunks(self) -> int: ...

    def dense_search(
        self, qvec: np.ndarray, depth: int, allowed: np.ndarray | None = None
    ) -> dict[int, float]:
        """The `depth` rows nearest `qvec` (inner product), within `allowed` rows when given."""
        ...

    def lexical_search(
        self, query: str, depth: int, allowed: np.ndarray | None = None
    ) -> dict[int, float]:
        """The `depth` best BM25 rows with a positive score, within `allowed` rows when given."""
        ...

    def lexical_scores(self, query: str, rows: Sequence[int]) -> list[float]:
        """BM25 scores of the given rows (0 where no query term occurs)."""
        ...

    def vectors_of(self, rows: Sequence[int]) -> np.ndarray:
        """The stored vectors of the given rows, in that order."""
        ...

    def rows_of(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Every row of the given documents, sorted."""
        ...

    def chunks(self, rows: Sequence[int]) -> list[Chunk]:
        """Chunks by row, in the order asked."""
        ...

    def doc_chunks(self, doc_id: str) -> list[tuple[int, Chunk]]:
        """(row, chunk) of one document, in order."""
        ...

    def document(self, doc_id: str) -> Document:
        """One document with its full text; NotFound when there is none."""
        ...

    def marks(self, doc_id: str) -> tuple[Mark, ...]:
        """Where the pages and sections of a document start (none for plain text)."""
        ...

    def text_slice(self, doc_id: str, start: int, end: int) -> str:
        """`document(doc_id).text[start:end]`, without necessarily reading the whole text."""
        ...

    def term_df(self, term: str) -> tuple[int, int]:
        """How many chunks hold a lexical term (a stem of `lexical.terms`), and of how many."""
        ...

    def close(self) -> None: ...


@dataclass
class Changes:
    """What one indexing run writes: new or changed documents with their chunks and vectors
    (`vectors[i]` belongs to `chunks[i]`), and documents to drop. `manifest` describes the
    whole index after the change, its "documents" in order: the kept ones, then the fresh."""

    manifest: dict[str, Any]
    documents: list[Document] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
    removed: set[str] = field(default_factory=set)


class IndexStore(Protocol):
    """Where an index lives: versions to read, and one writer at a time."""

    @property
    def name(self) -> str:
        """Where it is, for messages: a folder, or a Milvus URI and collection."""
        ...

    def current_version(self) -> str | None:
        """The live version's name, or None before the first build."""
        ...

    def open(self, model: str | None = None, dim: int | None = None) -> IndexView:
        """The live version; IndexMissing before the first build, IndexMismatch when it was
        built by another format, model or dimension."""
        ...

    def write_lock(self) -> AbstractContextManager[None]:
        """Held by the one writer; a second gets Busy."""
        ...

    def write(self, old: IndexView | None, changes: Changes) -> str:
        """Apply `changes` on top of `old` (the live version, None for a first build) so that
        readers see either the old or the new content of each document, never a mix within one;
        returns the new version's name. Call it while holding `write_lock`."""
        ...
