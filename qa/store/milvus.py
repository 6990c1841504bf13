"""The index in Milvus: a local file runs Milvus Lite (embedded), http://host:19530 a server.

Two collections, named by a prefix (QA_MILVUS_COLLECTION, default "qa"):

    qa_chunks   one row per chunk: row (primary key), doc_id, gen, ord, start, end, text, the
                dense vector (HNSW, inner product) and the BM25 sparse vector that Milvus
                computes from `terms` (the chunk's `lexical.terms`, so BM25 sees the same
                stems, stopwords and number words as the folder's bm25s)
    qa_docs     one "head" row per document (its generation `gen`, chunk count and metadata as
                JSON: every field of `Document` but id and text), its text in parts, and one
                "manifest" row (what built the index, and the version)

A write is incremental and committed per document: its new chunks and text go in under a new
generation, then its head row is upserted (the commit), then the old generation's rows are
deleted. Readers use only chunks whose generation is their document's, so a crash anywhere
leaves every document whole, old or new; leftovers of a crashed write are swept by the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import (
    Busy,
    IndexMissing,
    InvalidInput,
    MissingExtra,
    NotFound,
    StoreUnavailable,
)
from qa.language import lexical
from qa.records import Chunk, Document, Mark
from qa.store.folder import HNSW_EF_CONSTRUCTION, HNSW_M
from qa.store.interface import Changes, IndexView
from qa.store.manifest import check_manifest, embed_text

TEXT_PART = 16_000  # characters per stored part of a document (VARCHAR holds 65,535 bytes)
MILVUS_EF = 128  # HNSW search breadth in Milvus: recall@10 0.975 at 100k synthetic chunks
TEXT_CACHE = 64  # documents' texts a view keeps in memory
HIT_CACHE = 4096  # chunk rows (fields and vector) from recent searches a view keeps
_HIT_FIELDS = ["doc_id", "gen", "ord", "start", "end", "text", "vec"]
DF_SCAN_MAX = 200_000  # up to this many chunks, term frequencies come from one read of all
BM25_K1, BM25_B = 1.5, 0.75  # bm25s' defaults, which the folder store uses
_DUMMY = [0.0, 0.0]  # Milvus wants a vector field in every collection
_BATCH = 500  # rows per insert or query
_write_locks: dict[str, threading.Lock] = {}


class MilvusStore:
    """An index in Milvus, behind the store interface (`qa/store/interface.py`)."""

    def __init__(self, uri: str, collection: str = "qa", settings: Any = None) -> None:
        if not collection.replace("_", "").isalnum():
            raise InvalidInput(
                f"Milvus collection name {collection!r}: use letters, digits and underscores"
            )
        self.uri = uri
        self.prefix = collection
        self.chunks_name = f"{collection}_chunks"
        self.docs_name = f"{collection}_docs"
        self.client = _connect(uri)
        for name in (self.chunks_name, self.docs_name):  # a collection starts released
            if self.client.has_collection(name):
                self.client.load_collection(name)

    @property
    def name(self) -> str:
        return f"{self.uri} (collection {self.prefix})"

    def current_version(self) -> str | None:
        manifest = self._manifest()
        return None if manifest is None else manifest["version"]

    def _manifest(self) -> dict[str, Any] | None:
        if not self.client.has_collection(self.docs_name):
            return None
        rows = self.client.query(self.docs_name, ids=["manifest"], output_fields=["value"])
        return dict(rows[0]["value"]) if rows else None

    def open(self, model: str | None = None, dim: int | None = None) -> MilvusView:
        manifest = self._manifest()
        if manifest is None:
            raise IndexMissing(
                f"no index in Milvus at {self.name}; build one with"
                f" `qa index PATH --store milvus --milvus-uri {self.uri}`"
            )
        check_manifest(manifest, model, dim, where=self.name)
        heads = _query_all(
            self.client, self.docs_name, 'kind == "head"', ["doc_id", "gen", "value"]
        )
        heads.sort(key=lambda h: h["value"]["order"])
        manifest["documents"] = {h["doc_id"]: dict(h["value"]["meta"]) for h in heads}
        gens = {h["doc_id"]: int(h["gen"]) for h in heads}
        return MilvusView(self, manifest, gens, {h["doc_id"]: dict(h["value"]) for h in heads})

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """One writer per process, and per machine for a Milvus Lite file; a Milvus server's
        writers must be kept to one by whoever runs them."""
        lock = _write_locks.setdefault(self.name, threading.Lock())
        if not lock.acquire(blocking=False):
            raise Busy(f"{self.name} is being written; try again shortly")
        try:
            if _is_local(self.uri):
                with open(f"{self.uri}.qa-lock", "w") as handle:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError as exc:
                        raise Busy(f"{self.name} is being written; try again shortly") from exc
                    yield
            else:
                yield
        finally:
            lock.release()

    def write(self, old: IndexView | None, changes: Changes) -> str:
        """Upsert the fresh documents and delete the removed ones, one document at a time (what
        stays is kept in place, so `old` is not read)."""
        manifest = dict(changes.manifest)
        dim = int(manifest["dim"])
        new_collections = not self.client.has_collection(self.chunks_name)
        self._create(dim)
        previous = self._manifest()
        count = int(previous["count"]) + 1 if previous else 1
        version = f"m{count:06d}"
        gen = time.time_ns()  # unique even after a crashed first write that left no manifest
        order = {doc_id: n for n, doc_id in enumerate(manifest["documents"])}
        by_doc: dict[str, list[int]] = {}
        for i, chunk in enumerate(changes.chunks):
            by_doc.setdefault(chunk.doc_id, []).append(i)
        vectors = changes.vectors if changes.vectors is not None else np.zeros((0, dim))
        for doc_id in changes.removed - {d.id for d in changes.documents}:
            self.client.delete(self.docs_name, ids=[f"head:{doc_id}"])  # the commit
            self._sweep(doc_id, keep_gen=None)
        for doc in changes.documents:
            rows = by_doc.get(doc.id, [])
            parts = self._insert_document(
                doc, gen, [changes.chunks[i] for i in rows], vectors[rows]
            )
            meta = manifest["documents"][doc.id]
            head = {
                "order": order[doc.id],
                "meta": meta,
                "document": _doc_fields(doc),
                "parts": parts,
            }
            self.client.upsert(
                self.docs_name, [_doc_row(f"head:{doc.id}", "head", doc.id, gen, value=head)]
            )  # the commit
            if not new_collections:
                self._sweep(doc.id, keep_gen=gen)
        if not new_collections:
            self._reorder(order)
            self._sweep_orphans()
        stored = {k: v for k, v in manifest.items() if k != "documents"}
        stored |= {"version": version, "count": count, "n_chunks": self._count_chunks()}
        self.client.upsert(self.docs_name, [_doc_row("manifest", "manifest", "", gen, stored)])
        return version

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        c = self.client
        if not c.has_collection(self.chunks_name):
            schema = c.create_schema(auto_id=False)
            schema.add_field("row", DataType.INT64, is_primary=True)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
            schema.add_field("gen", DataType.INT64)
            schema.add_field("ord", DataType.INT64)
            schema.add_field("start", DataType.INT64)
            schema.add_field("end", DataType.INT64)
            schema.add_field("text", DataType.VARCHAR, max_length=65535)
            schema.add_field(
                "terms",
                DataType.VARCHAR,
                max_length=65535,
                enable_analyzer=True,
                enable_match=True,
                analyzer_params={"tokenizer": "standard"},
            )
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["terms"],
                    output_field_names=["sparse"],
                )
            )
            index = c.prepare_index_params()
            index.add_index(
                "vec",
                index_type="HNSW",
                metric_type="IP",
                params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION},
            )
            index.add_index(
                "sparse",
                index_type="SPARSE_INVERTED_INDEX",
                metric_type="BM25",
                params={"bm25_k1": BM25_K1, "bm25_b": BM25_B},
            )
            c.create_collection(
                self.chunks_name, schema=schema, index_params=index, consistency_level="Strong"
            )
        if not c.has_collection(self.docs_name):
            schema = c.create_schema(auto_id=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=8192)
            schema.add_field("kind", DataType.VARCHAR, max_length=16)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
            schema.add_field("gen", DataType.INT64)
            schema.add_field("part", DataType.INT64)
            schema.add_field("text", DataType.VARCHAR, max_length=65535)
            schema.add_field("value", DataType.JSON)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=len(_DUMMY))
            index = c.prepare_index_params()
            index.add_index("v", index_type="FLAT", metric_type="L2")
            c.create_collection(
                self.docs_name, schema=schema, index_params=index, consistency_level="Strong"
            )

    def _insert_document(
        self, doc: Document, gen: int, chunks: list[Chunk], vectors: np.ndarray
    ) -> int:
        """Write a document's text parts and chunks under `gen`; returns the number of parts."""
        parts = [doc.text[i : i + TEXT_PART] for i in range(0, len(doc.text), TEXT_PART)] or [""]
        self.client.upsert(
            self.docs_name,
            [
                _doc_row(f"text:{doc.id}:{gen}:{n}", "text", doc.id, gen, part=n, text=part)
                for n, part in enumerate(parts)
            ],
        )
        rows = [
            {
                "row": _row_id(doc.id, gen, c.ord),
                "doc_id": doc.id,
                "gen": gen,
                "ord": c.ord,
                "start": c.start,
                "end": c.end,
                "text": c.text,
                "terms": _encode(lexical.terms(embed_text(doc.title, c.text))),
                "vec": np.asarray(v, dtype=np.float32).tolist(),
            }
            for c, v in zip(chunks, vectors, strict=True)
        ]
        for i in range(0, len(rows), _BATCH):
            self.client.upsert(self.chunks_name, rows[i : i + _BATCH])
        return len(parts)

    def _sweep(self, doc_id: str, keep_gen: int | None) -> None:
        """Delete a document's chunks and text of every generation but `keep_gen`."""
        where = f"doc_id == {_quote(doc_id)}"
        if keep_gen is not None:
            where += f" and gen != {keep_gen}"
        self.client.delete(self.chunks_name, filter=where)
        self.client.delete(self.docs_name, filter=f'{where} and kind == "text"')

    def _sweep_orphans(self) -> None:
        """Rows of a generation that is not their document's live one (none, if the document
        has no head): what a write that crashed left behind."""
        heads = {
            h["doc_id"]: int(h["gen"])
            for h in _query_all(self.client, self.docs_name, 'kind == "head"', ["doc_id", "gen"])
        }
        for name, where in (
            (self.chunks_name, "row >= 0 or row < 0"),
            (self.docs_name, 'kind == "text"'),
        ):
            stale = {
                (r["doc_id"], int(r["gen"]))
                for r in _query_all(self.client, name, where, ["doc_id", "gen"])
                if heads.get(r["doc_id"]) != int(r["gen"])
            }
            for doc_id, gen in stale:
                self.client.delete(name, filter=f"doc_id == {_quote(doc_id)} and gen == {gen}")

    def _reorder(self, order: dict[str, int]) -> None:
        """Keep each head's place in the manifest order (kept documents first, then fresh)."""
        heads = _query_all(
            self.client, self.docs_name, 'kind == "head"', ["doc_id", "gen", "value"]
        )
        moved = [
            h for h in heads if h["doc_id"] in order and h["value"]["order"] != order[h["doc_id"]]
        ]
        for h in moved:
            value = dict(h["value"]) | {"order": order[h["doc_id"]]}
            self.client.upsert(
                self.docs_name,
                [_doc_row(f"head:{h['doc_id']}", "head", h["doc_id"], int(h["gen"]), value)],
            )

    def _count_chunks(self) -> int:
        rows = self.client.query(self.chunks_name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def drop(self) -> None:
        """Delete the index's collections."""
        for name in (self.chunks_name, self.docs_name):
            if self.client.has_collection(name):
                self.client.drop_collection(name)


@dataclass
class MilvusView:
    """One version of a Milvus index as retrieval reads it (`IndexView`)."""

    store: MilvusStore
    manifest: dict[str, Any]
    gens: dict[str, int]  # doc_id -> live generation
    heads: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _df: dict[str, int] = field(default_factory=dict, repr=False)
    _texts: OrderedDict[str, str] = field(default_factory=OrderedDict, repr=False)
    _hits: OrderedDict[int, dict] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def n_chunks(self) -> int:
        return int(self.manifest["n_chunks"])

    @property
    def _client(self) -> Any:
        return self.store.client

    def _live(self, hit: dict) -> bool:
        entity = hit.get("entity", hit)
        return self.gens.get(entity["doc_id"]) == entity["gen"]

    def dense_search(
        self, qvec: np.ndarray, depth: int, allowed: np.ndarray | None = None
    ) -> dict[int, float]:
        hits = self._client.search(
            self.store.chunks_name,
            data=[np.asarray(qvec, dtype=np.float32).tolist()],
            anns_field="vec",
            limit=depth,
            filter=_rows_filter(allowed),
            output_fields=_HIT_FIELDS,
            search_params={"metric_type": "IP", "params": {"ef": max(MILVUS_EF, depth)}},
        )[0]
        return {int(h["row"]): float(h["distance"]) for h in self._keep(hits)}

    def _keep(self, hits: list[dict]) -> list[dict]:
        """The live hits; their rows are kept, so that the chunks and vectors retrieval asks
        for next need no further round trip to Milvus."""
        live = [h for h in hits if self._live(h)]
        with self._lock:
            for h in live:
                entity = h.get("entity", h)
                if "text" in entity:
                    self._hits[int(h["row"])] = {"row": int(h["row"]), **entity}
                    self._hits.move_to_end(int(h["row"]))
            while len(self._hits) > HIT_CACHE:
                self._hits.popitem(last=False)
        return live

    def lexical_search(
        self, query: str, depth: int, allowed: np.ndarray | None = None
    ) -> dict[int, float]:
        return self._bm25(query, depth, _rows_filter(allowed), _HIT_FIELDS)

    def lexical_scores(self, query: str, rows: Sequence[int]) -> list[float]:
        found = self._bm25(query, len(rows), _rows_filter(np.asarray(rows)))
        return [found.get(int(r), 0.0) for r in rows]

    def _bm25(
        self, query: str, limit: int, where: str, fields: Sequence[str] = ("doc_id", "gen")
    ) -> dict[int, float]:
        terms = _encode(lexical.terms(query))
        if not terms or limit == 0:
            return {}
        hits = self._client.search(
            self.store.chunks_name,
            data=[terms],
            anns_field="sparse",
            limit=limit,
            filter=where,
            output_fields=list(fields),
            search_params={"metric_type": "BM25"},
        )[0]
        # Milvus Lite reports BM25 as a negative distance, a server as a positive score.
        return {int(h["row"]): abs(float(h["distance"])) for h in self._keep(hits)}

    def vectors_of(self, rows: Sequence[int]) -> np.ndarray:
        found = {int(r["row"]): r["vec"] for r in self._query_rows(rows, ["row", "vec"])}
        return np.array([found[int(r)] for r in rows], dtype=np.float32)

    def _query_rows(self, rows: Sequence[int], fields: list[str]) -> list[dict]:
        """The rows' fields: those of recent search hits from memory, the rest from Milvus."""
        out: list[dict] = []
        ids: list[int] = []
        with self._lock:
            for r in rows:
                hit = self._hits.get(int(r))
                if hit is None:
                    ids.append(int(r))
                else:
                    out.append(hit)
        for i in range(0, len(ids), _BATCH):
            out.extend(
                self._client.query(
                    self.store.chunks_name, ids=ids[i : i + _BATCH], output_fields=fields
                )
            )
        return out

    def rows_of(self, doc_ids: Sequence[str]) -> np.ndarray:
        rows: list[int] = []
        for doc_id in doc_ids:
            rows.extend(r for r, _ in self.doc_chunks(doc_id))
        return np.array(sorted(rows), dtype=np.int64)

    def chunks(self, rows: Sequence[int]) -> list[Chunk]:
        fields = ["row", "doc_id", "ord", "start", "end", "text"]
        found = {int(r["row"]): _chunk(r) for r in self._query_rows(rows, fields)}
        return [found[int(r)] for r in rows]

    def doc_chunks(self, doc_id: str) -> list[tuple[int, Chunk]]:
        gen = self.gens.get(doc_id)
        if gen is None:
            return []
        rows = _query_all(
            self._client,
            self.store.chunks_name,
            f"doc_id == {_quote(doc_id)} and gen == {gen}",
            ["row", "doc_id", "ord", "start", "end", "text"],
        )
        return sorted(((int(r["row"]), _chunk(r)) for r in rows), key=lambda rc: rc[1].ord)

    def document(self, doc_id: str) -> Document:
        gen, head = self.gens.get(doc_id), self.heads.get(doc_id)
        if gen is None or head is None:
            raise NotFound(f"no document with id {doc_id!r}; GET /documents lists them")
        return Document(id=doc_id, text=self._text(doc_id, gen, head), **_fields(head))

    def marks(self, doc_id: str) -> tuple[Mark, ...]:
        head = self.heads.get(doc_id)
        return _fields(head)["marks"] if head else ()

    def _text(self, doc_id: str, gen: int, head: dict[str, Any]) -> str:
        """A document's full text, from its parts; the last few are kept (a version's texts
        never change), as passages and citations ask for the same documents again and again."""
        with self._lock:
            if doc_id in self._texts:
                self._texts.move_to_end(doc_id)
                return self._texts[doc_id]
        keys = [f"text:{doc_id}:{gen}:{n}" for n in range(int(head["parts"]))]
        parts = self._client.query(self.store.docs_name, ids=keys, output_fields=["part", "text"])
        if len(parts) != len(keys):
            raise NotFound(f"document {doc_id!r} was just replaced or removed; ask again")
        text = "".join(p["text"] for p in sorted(parts, key=lambda p: p["part"]))
        with self._lock:
            self._texts[doc_id] = text
            while len(self._texts) > TEXT_CACHE:
                self._texts.popitem(last=False)
        return text

    def text_slice(self, doc_id: str, start: int, end: int) -> str:
        return self.document(doc_id).text[start:end]

    def term_df(self, term: str) -> tuple[int, int]:
        """Chunks holding `term`: from one read of every chunk's terms (the first time, for an
        index of up to DF_SCAN_MAX chunks), else one `TEXT_MATCH` count per term."""
        with self._lock:
            if not self._df and self.n_chunks <= DF_SCAN_MAX:
                self._df.update(self._scan_df())
                self._df[""] = 0  # scanned: an absent term occurs nowhere
            scanned = "" in self._df
        if term not in self._df:
            (token,) = _encode([term]).split() or [""]
            count = 0
            if token and not scanned:
                rows = self._client.query(
                    self.store.chunks_name,
                    filter=f"TEXT_MATCH(terms, '{token}')",
                    output_fields=["count(*)"],
                )
                count = int(rows[0]["count(*)"])
            self._df[term] = count
        return self._df[term], max(self.n_chunks, 1)

    def _scan_df(self) -> Counter[str]:
        """Document frequencies of every term over the live chunks."""
        df: Counter[str] = Counter()
        fields = ["doc_id", "gen", "terms"]
        for row in _query_all(self._client, self.store.chunks_name, "row >= 0 or row < 0", fields):
            if self._live(row):
                df.update({bytes.fromhex(t[1:]).decode() for t in row["terms"].split()})
        return df

    def close(self) -> None:
        pass


def _connect(uri: str) -> Any:
    """A client for `uri`, or one clear error saying what is wrong with it."""
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError:
        raise MissingExtra("The Milvus store (QA_STORE=milvus)", "milvus") from None

    if not uri:
        raise InvalidInput("QA_MILVUS_URI is empty: give a file (Milvus Lite) or http://host:19530")
    if _is_local(uri):
        try:
            import milvus_lite  # noqa: F401  (pymilvus opens a local file with it)
        except ImportError:
            raise MissingExtra(f"A Milvus Lite file (QA_MILVUS_URI={uri})", "milvus") from None
        folder = Path(uri).resolve().parent
        if not folder.is_dir():
            raise StoreUnavailable(
                f"Milvus Lite file {uri}: folder {folder} does not exist; create it or give"
                " another --milvus-uri"
            )
    elif not uri.startswith(("http://", "https://", "tcp://", "unix:")):
        raise InvalidInput(
            f"--milvus-uri {uri!r}: give a local file such as index/milvus.db (Milvus Lite)"
            " or a server address such as http://localhost:19530"
        )
    # pymilvus warns on every paged query that Milvus Lite keeps no server-side timestamp
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    try:
        return MilvusClient(uri, timeout=10)
    except MilvusException as exc:
        if _is_local(uri):
            raise StoreUnavailable(
                f"cannot open the Milvus Lite file {uri} ({exc.message}): a Lite file serves one"
                " process at a time; stop the other one, or use a Milvus server"
            ) from None
        raise StoreUnavailable(
            f"cannot reach Milvus at {uri}: {exc.message}; check that it runs and the address"
        ) from None


def _is_local(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("unix:")


def _row_id(doc_id: str, gen: int, ord_: int) -> int:
    digest = hashlib.blake2b(f"{doc_id}\0{gen}\0{ord_}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


def _encode(terms: list[str]) -> str:
    """Terms as tokens that Milvus' standard analyzer keeps whole: hex of their UTF-8."""
    return " ".join("t" + t.encode().hex() for t in terms)


def _quote(value: str) -> str:
    return json.dumps(value)


def _rows_filter(rows: np.ndarray | None) -> str:
    return "" if rows is None else f"row in [{','.join(str(int(r)) for r in rows)}]"


def _chunk(r: dict) -> Chunk:
    return Chunk(
        doc_id=r["doc_id"],
        ord=int(r["ord"]),
        start=int(r["start"]),
        end=int(r["end"]),
        text=r["text"],
    )


def _doc_fields(doc: Document) -> dict[str, Any]:
    """Every field of a document but its id and text: new fields ride along unchanged."""
    return {k: v for k, v in asdict(doc).items() if k not in ("id", "text")}


def _fields(head: dict[str, Any]) -> dict[str, Any]:
    """The document fields a head row holds (see `_doc_fields`), its marks as `Mark`s again."""
    fields = dict(head["document"])
    fields["marks"] = tuple(Mark(**m) for m in fields.get("marks") or ())
    return fields


def _doc_row(
    key: str, kind: str, doc_id: str, gen: int, value: Any = None, part: int = 0, text: str = ""
) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "doc_id": doc_id,
        "gen": gen,
        "part": part,
        "text": text,
        "value": value or {},
        "v": _DUMMY,
    }


def _query_all(client: Any, collection: str, where: str, fields: list[str]) -> list[dict]:
    """Every row matching `where`, read in batches (a plain query stops at 16,384 rows)."""
    iterator = client.query_iterator(
        collection, batch_size=_BATCH * 4, filter=where, output_fields=fields
    )
    rows: list[dict] = []
    try:
        while batch := iterator.next():
            rows.extend(batch)
    finally:
        iterator.close()
    return rows
