"""Build or update an index from files: only new and changed documents are embedded."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from qa.encoders.embedding import Embedder, check_runtime, runtime_record
from qa.errors import IndexMissing
from qa.records import Chunk, Document
from qa.sources import ingest
from qa.sources.chunking import ChunkingParams, chunk_text
from qa.store import manifest
from qa.store.interface import Changes, IndexStore, IndexView
from qa.store.opening import open_store

Target = Path | IndexStore  # an index folder, or any store

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class IndexReport:
    """What one indexing run did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    n_chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    version: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, removed {len(self.removed)}, "
            f"failed {len(self.failed)}; {self.n_chunks} chunks "
            f"({self.embedded_chunks} embedded) in {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def index_paths(
    paths: Iterable[Path],
    index_dir: Target,
    embedder: Embedder,
    params: ChunkingParams | None = None,
    prune: bool = True,
    batch_size: int = 32,
    max_file_bytes: int | None = None,
    progress: bool = False,
    on_progress: Progress | None = None,
) -> IndexReport:
    """Index files and folders into `index_dir`, incrementally and atomically.

    Unchanged files (same content hash) cost a read and a hash; changed ones replace their
    chunks; with `prune`, documents that vanished from a walked folder are removed.
    """
    files, roots = ingest.discover(paths)
    return index_files(
        files,
        index_dir,
        embedder,
        params,
        roots if prune else [],
        batch_size,
        max_file_bytes,
        progress,
        on_progress,
    )


def index_files(
    files: Sequence[ingest.SourceFile],
    index_dir: Target,
    embedder: Embedder,
    params: ChunkingParams | None = None,
    prune_roots: Sequence[Path] = (),
    batch_size: int = 32,
    max_file_bytes: int | None = None,
    progress: bool = False,
    on_progress: Progress | None = None,
    remove_ids: Sequence[str] = (),
    loaded: Mapping[str, Document] | None = None,
) -> IndexReport:
    """Index the given files (and drop `remove_ids`) into a folder or store; see `index_paths`.

    `loaded`: documents the caller has already read from these very files, by id (an upload
    checked before it was stored), so that a scanned PDF is not read by OCR twice.
    """
    started = time.perf_counter()
    report = IndexReport()
    target = open_store(index_dir)
    with target.write_lock():
        old = _open_previous(target, embedder)
        old_docs: dict[str, dict] = old.manifest["documents"] if old else {}
        params = params or _previous_params(old) or ChunkingParams()
        same_params = (
            old is not None
            and old.manifest.get("chunking") == asdict(params)
            and old.manifest.get("ingest_version") == ingest.VERSION
        )

        fresh: list[Document] = []
        seen: set[str] = set()
        for n, file in enumerate(files):
            if on_progress:
                on_progress("reading", n, len(files))
            seen.add(file.doc_id)
            try:
                size = file.path.stat().st_size
                if max_file_bytes is not None and size > max_file_bytes:
                    limit = max_file_bytes / 1e6
                    raise ingest.LoadError(f"too large ({size / 1e6:.1f} MB; limit {limit:.0f} MB)")
                data = file.path.read_bytes()
            except ingest.LoadError as exc:
                report.failed.append((str(file.path), str(exc)))
                continue
            except OSError as exc:
                report.failed.append((str(file.path), f"cannot read: {exc.strerror or exc}"))
                continue
            previous = old_docs.get(file.doc_id)
            if previous and same_params and previous["hash"] == ingest.content_hash(data):
                report.unchanged.append(file.doc_id)
                continue
            try:
                doc = (loaded or {}).get(file.doc_id) or ingest.load(
                    file.path,
                    file.doc_id,
                    data,
                    max_file_bytes,
                    _ocr_progress(progress, on_progress),
                )
            except ingest.LoadError as exc:
                report.failed.append((str(file.path), str(exc)))
                continue
            fresh.append(doc)
            (report.updated if previous else report.added).append(doc.id)

        gone = set(remove_ids) | _vanished(old_docs, seen, prune_roots)
        report.removed = sorted(gone - {d.id for d in fresh})
        if old is not None and not fresh and not report.removed and same_params:
            report.n_chunks = old.n_chunks
            report.version = old.version
            report.seconds = time.perf_counter() - started
            old.close()
            return report

        if old is not None:
            check_runtime(old.manifest, embedder.runtime(), target.name)
        replaced = gone | {d.id for d in fresh}
        kept = _kept(old, replaced, same_params, fresh)
        new_chunks, new_vectors, report.embedded_chunks = _embed_documents(
            fresh, embedder, params, batch_size, progress, on_progress
        )
        manifest = build_manifest(fresh, new_chunks, embedder.name, embedder.dim, params, kept)
        manifest["embedding"] = runtime_record(embedder, old.manifest if old else None)
        n_chunks = sum(meta["n_chunks"] for meta in manifest["documents"].values())
        if on_progress:
            on_progress("writing", n_chunks, n_chunks)
        changes = Changes(manifest, fresh, new_chunks, new_vectors, set(old_docs) & replaced)
        if old is not None and not same_params:
            changes.removed = set(old_docs)  # everything was re-chunked
        report.version = target.write(old, changes)
        report.n_chunks = n_chunks
        if old:
            old.close()
    report.seconds = time.perf_counter() - started
    return report


def _ocr_progress(progress: bool, on_progress: Progress | None) -> ingest.OnPage | None:
    """OCR progress through a scanned PDF: stage "reading scanned pages", or a terminal bar."""
    if on_progress is not None:
        return lambda done, total: on_progress("reading scanned pages", done, total)
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar: list[Any] = []

    def show(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc="OCR", unit="page"))
        bar[0].update(done - bar[0].n)
        if done == total:
            bar[0].close()

    return show


def _open_previous(target: IndexStore, embedder: Embedder) -> IndexView | None:
    try:
        return target.open(embedder.name, embedder.dim)
    except IndexMissing:
        return None


def _previous_params(old: IndexView | None) -> ChunkingParams | None:
    return ChunkingParams(**old.manifest["chunking"]) if old else None


def _vanished(old_docs: dict[str, dict], seen: set[str], roots: Sequence[Path]) -> set[str]:
    """Documents that came from a walked folder and are no longer in it."""
    resolved = [Path(r).resolve() for r in roots]
    gone = set()
    for doc_id, meta in old_docs.items():
        if doc_id in seen:
            continue
        source = Path(meta["source"]).resolve()
        if any(source.is_relative_to(root) for root in resolved):
            gone.add(doc_id)
    return gone


def _kept(
    old: IndexView | None, replaced: set[str], same_params: bool, fresh: list[Document]
) -> dict[str, dict]:
    """Manifest entries of the documents carried over unchanged from the previous version.

    With new chunking parameters nothing is carried over: the old documents join `fresh`, to be
    re-chunked and re-embedded."""
    if old is None:
        return {}
    kept = {}
    for doc_id, meta in old.manifest["documents"].items():
        if doc_id in replaced:
            continue
        if not same_params:
            fresh.append(old.document(doc_id))
            continue
        kept[doc_id] = meta
    return kept


def _embed_documents(
    docs: list[Document],
    embedder: Embedder,
    params: ChunkingParams,
    batch_size: int,
    progress: bool,
    on_progress: Progress | None,
) -> tuple[list[Chunk], np.ndarray, int]:
    """Chunk and embed new documents; identical content (same hash) is embedded once.

    Returns the chunks, their vectors, and how many chunks went through the encoder.
    """
    chunks: list[Chunk] = []
    texts: list[str] = []
    first_of_hash: dict[str, int] = {}
    copies: list[tuple[int, int]] = []  # (chunk index, index of the identical chunk embedded)
    for doc in docs:
        doc_chunks = chunk_text(doc.id, doc.text, embedder.count_tokens, params)
        base = len(chunks)
        if doc.hash in first_of_hash:
            src = first_of_hash[doc.hash]
            copies.extend((base + k, src + k) for k in range(len(doc_chunks)))
        else:
            first_of_hash[doc.hash] = base
        chunks.extend(doc_chunks)
        texts.extend(manifest.embed_text(doc.title, c.text) for c in doc_chunks)
    copied = {i for i, _ in copies}
    todo = [i for i in range(len(chunks)) if i not in copied]

    def on_batch(done: int, total: int) -> None:
        if on_progress:
            on_progress("embedding", done, total)

    vectors = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    if todo:
        on_batch(0, len(todo))  # before the first batch, which may wait for the model to load
        vectors[todo] = embedder.embed([texts[i] for i in todo], batch_size, progress, on_batch)
    for i, src in copies:
        vectors[i] = vectors[src]
    return chunks, vectors, len(todo)


def build_manifest(
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    model: str,
    dim: int,
    params: ChunkingParams,
    kept: dict[str, dict] | None = None,
) -> dict:
    """What a version records about how it was built and what it holds: `kept` documents'
    entries (from the previous version) first, then those of `documents`."""
    counts: dict[str, int] = {}
    for chunk in chunks:
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    return {
        "format": manifest.FORMAT,
        "model": model,
        "dim": dim,
        "chunking": asdict(params),
        "ingest_version": ingest.VERSION,
        "embedded_text": "title + newline + chunk text",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "documents": {
            **(kept or {}),
            **{
                d.id: {
                    "hash": d.hash,
                    "title": d.title,
                    "date": d.date,
                    "place": d.place,
                    "source": d.source,
                    "author": d.author,
                    "n_chunks": counts.get(d.id, 0),
                }
                for d in documents
            },
        },
    }
