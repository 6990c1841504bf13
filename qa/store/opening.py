"""Which store a front end gets (`open_store`), and copying an index from one store to another."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qa.config import Settings, get_settings
from qa.errors import NotFound
from qa.store.interface import Changes, IndexStore, IndexView


def open_store(
    target: Path | str | IndexStore | None = None, settings: Settings | None = None
) -> IndexStore:
    """The store a front end asked for: a given store as is; else Milvus when QA_STORE=milvus
    (at QA_MILVUS_URI, collection QA_MILVUS_COLLECTION); else the index folder `target`
    (default QA_INDEX_DIR)."""
    if target is not None and not isinstance(target, (str, Path)):
        return target
    settings = settings or get_settings()
    if settings.store.kind == "milvus":
        from qa.store.milvus import MilvusStore

        return MilvusStore(settings.store.milvus_uri, settings.store.milvus_collection, settings)
    from qa.store.folder import FolderStore

    return FolderStore(Path(target or settings.store.index_dir), settings.store.vector_index)


def copy_index(source: IndexView, target: IndexStore) -> str:
    """Write every document of `source` with its chunks and vectors into `target`, without
    re-embedding (moving a folder index into Milvus, say); returns the new version."""
    documents, chunks, rows = [], [], []
    for doc_id in source.manifest["documents"]:
        documents.append(source.document(doc_id))
        for row, chunk in source.doc_chunks(doc_id):
            rows.append(row)
            chunks.append(chunk)
    dim = int(source.manifest["dim"])
    vectors = source.vectors_of(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    with target.write_lock():
        try:
            old = target.open()
        except NotFound:
            old = None
        removed = set(old.manifest["documents"]) if old is not None else set()
        changes = Changes(dict(source.manifest), documents, chunks, vectors, removed)
        return target.write(old, changes)
