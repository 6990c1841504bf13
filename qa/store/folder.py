"""The index folder: versioned snapshots swapped in atomically, read as one consistent version.

    INDEX_DIR/
      CURRENT              name of the live version, replaced atomically
      .lock                held by the one process that writes
      v000003/
        manifest.json      what built it: format, model, dim, chunking, documents, counts
        vectors.faiss      inner-product FAISS index over unit vectors (exact flat; HNSW or
                           IVF with QA_VECTOR_INDEX=hnsw|ivf); row i = chunk i
        chunks.sqlite      documents (full text; pages and sections as JSON marks) and chunks
                           (offsets and text), readable
        bm25/              bm25s arrays and vocabulary (numpy + JSON, no pickle)

A writer builds a new version in a temporary folder beside the live one, fsyncs it, renames it
into place and only then points CURRENT at it. A crash at any moment leaves CURRENT naming a
complete version. Readers load whatever CURRENT names and keep that snapshot for a request.
`FolderStore` is this folder behind the store interface (`qa/store/interface.py`); a `Snapshot` is
its `IndexView`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import Busy, IndexMissing, InvalidInput, NotFound
from qa.language import lexical
from qa.records import Chunk, Document, Mark
from qa.store.interface import Changes, IndexView
from qa.store.manifest import check_manifest, embed_text, read_manifest

KEEP_VERSIONS = 2  # the live one and the one before, which readers may still hold
VECTOR_INDEXES = ("flat", "hnsw", "ivf")
HNSW_M = 32  # graph degree: recall and memory grow with it
HNSW_EF_CONSTRUCTION = 200  # build-time breadth
HNSW_EF_SEARCH = 512  # search-time breadth: 128 gave recall@10 0.82 at 100k synthetic chunks
IVF_LISTS_PER_SQRT = 4  # inverted lists: about 4 sqrt(n), a power of two
IVF_TRAIN_PER_LIST = 64  # k-means of the lists on up to this many sampled vectors per list
IVF_NPROBE = 128  # lists a search scans: recall@10 0.983 at 1M chunks (docs/scaling.md)


@dataclass
class Snapshot:
    """One loaded, immutable version of an index."""

    path: Path
    manifest: dict[str, Any]
    vectors: Any  # faiss.Index
    bm25: Any  # bm25s.BM25
    db: sqlite3.Connection
    _lexical: tuple[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def n_chunks(self) -> int:
        return int(self.manifest["n_chunks"])

    def chunks(self, rows: Sequence[int]) -> list[Chunk]:
        """Chunks by row number (their FAISS position), in the order asked."""
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = {
            row: Chunk(doc_id=doc_id, ord=ord_, start=start, end=end, text=text)
            for row, doc_id, ord_, start, end, text in self.db.execute(
                f"SELECT row, doc_id, ord, start, end, text FROM chunks WHERE row IN ({marks})",
                [int(r) for r in rows],
            )
        }
        return [found[int(r)] for r in rows]

    def document(self, doc_id: str) -> Document:
        """One document with its full text."""
        extra = "author, marks" if self._has_marks else "NULL, NULL"
        row = self.db.execute(
            f"SELECT text, title, source, hash, date, place, {extra} FROM documents WHERE id = ?",
            (doc_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no document with id {doc_id!r}; GET /documents lists them")
        text, title, source, hash_, date, place, author, marks = row
        return Document(
            id=doc_id,
            text=text,
            title=title,
            source=source,
            hash=hash_,
            date=date,
            place=place,
            author=author,
            marks=marks_from_json(marks),
        )

    def marks(self, doc_id: str) -> tuple[Mark, ...]:
        """Where the pages and sections of a document start (none for plain text)."""
        if not self._has_marks:
            return ()
        row = self.db.execute("SELECT marks FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return marks_from_json(row[0]) if row else ()

    @cached_property
    def _has_marks(self) -> bool:
        """Versions written before pages and sections (ingest version 3) have no marks."""
        return "marks" in {col for _, col, *_ in self.db.execute("PRAGMA table_info(documents)")}

    def doc_chunks(self, doc_id: str) -> list[tuple[int, Chunk]]:
        """(row, chunk) of one document, in order."""
        return [
            (row, Chunk(doc_id=doc_id, ord=ord_, start=start, end=end, text=text))
            for row, ord_, start, end, text in self.db.execute(
                "SELECT row, ord, start, end, text FROM chunks WHERE doc_id = ? ORDER BY ord",
                (doc_id,),
            )
        ]

    def dense_search(
        self, qvec: np.ndarray, depth: int, allowed: np.ndarray | None = None
    ) -> dict[int, float]:
        import faiss

        params = None
        selector = None if allowed is None else faiss.IDSelectorBatch(allowed.astype(np.int64))
        if isinstance(self.vectors, faiss.IndexHNSW):  # a file does not keep efSearch
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, depth))
            if selector is not None:
                params.sel = selector
        elif isinstance(self.vectors, faiss.IndexIVF):  # nor nprobe
            params = faiss.SearchParametersIVF(nprobe=ivf_probes(self.vectors.nlist))
            if selector is not None:
                params.sel = selector
        elif selector is not None:
            params = faiss.SearchParameters(sel=selector)
        if allowed is not None:
            depth = min(depth, len(allowed))
        scores, ids = self.vectors.search(
            qvec.reshape(1, -1).astype(np.float32), depth, params=params
        )
        return {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}

    def _bm25_scores(self, query: str) -> np.ndarray:
        """BM25 scores of every row; the last query's are kept, as fusion asks twice."""
        last = self._lexical
        if last is not None and last[0] == query:
            return last[1]
        vocab = self.bm25.vocab_dict
        ids = [vocab[t] for t in lexical.terms(query) if t in vocab]
        scores = (
            np.asarray(self.bm25.get_scores(ids), dtype=np.float32)
            if ids
            else np.zeros(self.n_chunks, dtype=np.float32)
        )
        self._lexical = (query, scores)
        return scores

    def lexical_search(
        self, query: str, depth: int, allowed: np.ndarray | None = None
    ) -> dict[int, float]:
        scores = self._bm25_scores(query)
        if allowed is not None:
            masked = np.full(self.n_chunks, -1.0, dtype=np.float32)
            masked[allowed] = scores[allowed]
            scores = masked
        depth = min(depth, self.n_chunks)  # asking for more rows than there are is no error
        if depth <= 0:
            return {}
        top = np.argpartition(-scores, depth - 1)[:depth]
        return {int(r): float(scores[r]) for r in top if scores[r] > 0}

    def lexical_scores(self, query: str, rows: Sequence[int]) -> list[float]:
        scores = self._bm25_scores(query)
        return [float(scores[r]) for r in rows]

    def vectors_of(self, rows: Sequence[int]) -> np.ndarray:
        return self.vectors.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    def rows_of(self, doc_ids: Sequence[str]) -> np.ndarray:
        if not doc_ids:
            return np.zeros(0, dtype=np.int64)
        marks = ",".join("?" * len(doc_ids))
        rows = self.db.execute(f"SELECT row FROM chunks WHERE doc_id IN ({marks})", list(doc_ids))
        return np.array(sorted(r for (r,) in rows), dtype=np.int64)

    def text_slice(self, doc_id: str, start: int, end: int) -> str:
        (text,) = self.db.execute(
            "SELECT substr(text, ?, ?) FROM documents WHERE id = ?",
            (start + 1, end - start, doc_id),
        ).fetchone()
        return text

    @functools.cached_property
    def _df_table(self) -> tuple[dict[str, int], np.ndarray, int]:
        bm25 = self.bm25
        if bm25 is None:
            return {}, np.zeros(0), 1
        indptr = np.asarray(bm25.scores["indptr"])
        df = np.diff(np.append(indptr, len(bm25.scores["data"])))[: len(bm25.vocab_dict)]
        return bm25.vocab_dict, df, int(bm25.scores["num_docs"])

    def term_df(self, term: str) -> tuple[int, int]:
        vocab, df, n = self._df_table
        count = int(df[vocab[term]]) if term in vocab and vocab[term] < len(df) else 0
        return count, n

    def all_vectors(self) -> np.ndarray:
        return (
            self.vectors.reconstruct_n(0, self.vectors.ntotal)
            if self.n_chunks
            else np.zeros((0, int(self.manifest["dim"])), dtype=np.float32)
        )

    def close(self) -> None:
        self.db.close()


def current_version(index_dir: Path) -> str | None:
    """Name of the live version, or None before the first build."""
    try:
        name = (Path(index_dir) / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def open_snapshot(index_dir: Path, model: str | None = None, dim: int | None = None) -> Snapshot:
    """Load the live version, refusing one built by another format, model or dimension."""
    import bm25s
    import faiss

    index_dir = Path(index_dir)
    version = current_version(index_dir)
    if version is None:
        raise IndexMissing(
            f"no index at {index_dir}; build one with `qa index PATH --index {index_dir}`"
        )
    path = index_dir / version
    manifest = read_manifest(path)
    check_manifest(manifest, model, dim, where=path)
    db = sqlite3.connect(
        f"file:{path / 'chunks.sqlite'}?mode=ro", uri=True, check_same_thread=False
    )
    vectors = faiss.read_index(str(path / "vectors.faiss"))
    if isinstance(vectors, faiss.IndexIVF):
        vectors.make_direct_map()  # vectors_of() reads vectors back by row
    bm25 = (
        bm25s.BM25.load(str(path / "bm25"), show_progress=False) if manifest["n_chunks"] else None
    )
    return Snapshot(path, manifest, vectors, bm25, db)


@contextlib.contextmanager
def write_lock(index_dir: Path) -> Iterator[None]:
    """Only one writer at a time; a second gets a clear error instead of waiting forever."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Busy(
                f"{index_dir} is being written by another process; try again shortly"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_version(
    index_dir: Path,
    manifest: dict[str, Any],
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    vector_index: str = "flat",
) -> str:
    """Write a complete new version beside the live one and swap it in; returns its name.

    `chunks[i]` has vector `vectors[i]`. Call it while holding `write_lock`.
    """
    import faiss

    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    name = _next_version_name(index_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=index_dir))
    try:
        manifest = {**manifest, "version": name, "n_chunks": len(chunks)}
        if vector_index != "flat":  # absent means flat: folders written before it was a choice
            manifest["vector_index"] = vector_index
        _write_db(tmp / "chunks.sqlite", documents, chunks)
        index = build_vector_index(vector_index, vectors, int(manifest["dim"]))
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        if chunks:
            _write_bm25(tmp / "bm25", documents, chunks)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        _fsync_tree(tmp)
        os.rename(tmp, index_dir / name)
        fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = index_dir / "CURRENT.tmp"
    with open(pointer, "w") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(pointer, index_dir / "CURRENT")
    fsync_dir(index_dir)
    _remove_old_versions(index_dir, keep=name)
    return name


def build_vector_index(kind: str, vectors: np.ndarray, dim: int) -> Any:
    """An inner-product FAISS index holding `vectors` (row i = vector i): exact ("flat"), an
    HNSW graph ("hnsw") or inverted lists of unquantized vectors ("ivf", trained here)."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif kind == "ivf":
        lists = ivf_lists(len(x))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = ivf_probes(lists)
        index.cp.min_points_per_centroid = 1  # small indexes: fewer points than 39 per list
        index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
        index.cp.seed = 1234  # the same vectors give the same lists
        if len(x):
            index.train(x)
    else:
        raise InvalidInput(f"vector index must be one of {', '.join(VECTOR_INDEXES)}, not {kind!r}")
    if len(x):
        index.add(x)
    return index


def ivf_probes(lists: int) -> int:
    """Lists scanned per search of an IVF index with `lists` lists."""
    return min(lists, IVF_NPROBE)


def ivf_lists(n: int) -> int:
    """Inverted lists for n vectors: the power of two nearest 4 sqrt(n), at most n."""
    if n < 2:
        return 1
    return int(min(n, 2 ** round(np.log2(IVF_LISTS_PER_SQRT * np.sqrt(n)))))


class FolderStore:
    """The index folder behind the store interface: every write is a complete new version."""

    def __init__(self, index_dir: Path, vector_index: str = "flat") -> None:
        if vector_index not in VECTOR_INDEXES:
            build_vector_index(vector_index, np.zeros((0, 1)), 1)  # raises the clear error
        self.index_dir = Path(index_dir)
        self.vector_index = vector_index

    @property
    def name(self) -> str:
        return str(self.index_dir)

    def current_version(self) -> str | None:
        return current_version(self.index_dir)

    def open(self, model: str | None = None, dim: int | None = None) -> Snapshot:
        return open_snapshot(self.index_dir, model, dim)

    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        return write_lock(self.index_dir)

    def write(self, old: IndexView | None, changes: Changes) -> str:
        """A new version: the old one's documents that stay (their chunks and vectors carried
        over, not re-embedded), then the fresh ones."""
        dim = int(changes.manifest["dim"])
        replaced = changes.removed | {d.id for d in changes.documents}
        docs: list[Document] = []
        chunks: list[Chunk] = []
        rows: list[int] = []
        if old is not None:
            for doc_id in old.manifest["documents"]:
                if doc_id in replaced:
                    continue
                docs.append(old.document(doc_id))
                for row, chunk in old.doc_chunks(doc_id):
                    rows.append(row)
                    chunks.append(chunk)
        kept = old.vectors_of(rows) if old is not None and rows else np.zeros((0, dim))
        new = changes.vectors if changes.vectors is not None else np.zeros((0, dim))
        vectors = np.vstack([kept.reshape(-1, dim), new.reshape(-1, dim)]).astype(np.float32)
        return write_version(
            self.index_dir,
            changes.manifest,
            docs + changes.documents,
            chunks + changes.chunks,
            vectors,
            self.vector_index,
        )


def _next_version_name(index_dir: Path) -> str:
    numbers = [int(p.name[1:]) for p in index_dir.glob("v[0-9]*") if p.name[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1:06d}"


def _write_db(path: Path, documents: Sequence[Document], chunks: Sequence[Chunk]) -> None:
    counts: dict[str, int] = {}
    for chunk in chunks:
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    db = sqlite3.connect(path)
    try:
        db.executescript(
            """
            CREATE TABLE documents (id TEXT PRIMARY KEY, title TEXT, date TEXT, place TEXT,
                source TEXT, hash TEXT, n_chunks INTEGER, text TEXT, author TEXT, marks TEXT);
            CREATE TABLE chunks (row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES
                documents(id), ord INTEGER, start INTEGER, end INTEGER, text TEXT);
            CREATE INDEX chunks_doc ON chunks(doc_id, ord);
            """
        )
        db.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (d.id, d.title, d.date, d.place, d.source, d.hash, counts.get(d.id, 0), d.text)
                + (d.author, marks_to_json(d.marks))
                for d in documents
            ],
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?)",
            [(i, c.doc_id, c.ord, c.start, c.end, c.text) for i, c in enumerate(chunks)],
        )
        db.commit()
    finally:
        db.close()


def marks_to_json(marks: Sequence[Mark]) -> str | None:
    """A document's marks as readable JSON: [{"start": 0, "page": 1}, ...]; None without any."""
    if not marks:
        return None
    rows = [{k: v for k, v in asdict(m).items() if k == "start" or v} for m in marks]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def marks_from_json(value: str | None) -> tuple[Mark, ...]:
    return tuple(Mark(**row) for row in json.loads(value)) if value else ()


def _write_bm25(path: Path, documents: Sequence[Document], chunks: Sequence[Chunk]) -> None:
    import bm25s

    titles = {d.id: d.title for d in documents}
    corpus = [lexical.terms(embed_text(titles[c.doc_id], c.text)) or ["_"] for c in chunks]
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    retriever.save(str(path), show_progress=False)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(Path(folder) / name, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(folder))


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` survive a power cut, not only a killed process."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_old_versions(index_dir: Path, keep: str) -> None:
    """Drop versions older than the previous one, and temporary folders of dead writers."""
    versions = sorted(p for p in index_dir.glob("v[0-9]*") if p.is_dir())
    for old in versions[:-KEEP_VERSIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in index_dir.glob(".v*-*"):  # the lock is ours: these are dead writers' leftovers
        shutil.rmtree(tmp, ignore_errors=True)


def disk_size(path: Path) -> int:
    """Bytes used by a folder."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
