"""`qa bench scale`: build time, query latency, recall, memory and disk as the index grows, for
each store: the folder with exact FAISS (folder-flat), the folder with FAISS HNSW (folder-hnsw)
and Milvus Lite (milvus, HNSW).

The index grows by perturbed copies of a real set's chunks (see SYNTHETIC_NOTE); each size is
written and queried in a fresh process, so memory figures are clean. The approximate stores are
copies of the flat folder (`copy_index`: the same chunks and vectors, not re-embedded).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from qa.encoders.embedding import default_embedder
from qa.eval import synthetic
from qa.eval.report import markdown_table, pyplot, run_info, save_figure
from qa.eval.sets import build_index, default_index_dir, load_questions, load_set
from qa.eval.timing import Say, context_line, encoder_model, latency_stats, quiet
from qa.indexing import build_manifest
from qa.records import Chunk, Document
from qa.retrieval import search as retrieval
from qa.sources.chunking import ChunkingParams
from qa.store import folder as store
from qa.store import manifest
from qa.store.interface import IndexStore
from qa.store.opening import copy_index

WORD_SWAP = 0.2  # share of a copy's long words replaced by corpus words of the same length
SYNTHETIC_NOTE = (
    "Synthetic growth: the real corpus's chunks, with their real vectors, come first (sizes up "
    "to the real count are all real); copy c>0 of a document has "
    f"{WORD_SWAP:.0%} of its words (4+ letters) replaced by other corpus words of the same "
    "length (offsets stay exact, BM25 sees new text), and each of its chunks gets a synthetic "
    "vector drawn from {mixture}, from the component of the real chunk it copies (so the "
    "vector's topic follows the text's). Not copies of real vectors: no near-duplicates. "
    "Recall is measured with the set's real question vectors and with held-out draws from "
    "the mixture (never indexed). 'write' is the measured time to write the index version "
    "(SQLite, FAISS, BM25, fsync); 'embed (est.)' is chunks / the bare encoder's chunks/s "
    "measured in this run."
)
PROBES = 200  # held-out synthetic query vectors per size
MILVUS_NOTE = (
    "Milvus Lite (3.2.2) builds the HNSW index it is asked for (a FAISS HNSW graph per sealed "
    "segment), but every search first walks every row in Python (milvus_lite/search/"
    "executor_indexed.py: each primary key's latest write, then a per-row mask), so its "
    "search time grows with the rows like a flat scan; a Milvus server is the engine for scale."
)


def _rss_mb() -> dict[str, float]:
    """Resident and peak resident memory of this process (Linux /proc), in MB."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss" if key == "VmRSS" else "peak"] = int(value.split()[0]) / 1024
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out = {"rss": peak, "peak": peak}
    return out


def _perturb(parts: list[str], pools: dict[int, list[str]], rng: np.random.Generator) -> str:
    """Replace some words (odd items of `parts`) by corpus words of the same length."""
    out = list(parts)
    words = range(1, len(parts), 2)
    for i in words:
        if rng.random() < WORD_SWAP:
            pool = pools.get(len(parts[i]))
            if pool:
                out[i] = pool[int(rng.integers(len(pool)))]
    return "".join(out)


def build_scaled(
    base_dir: str, out_dir: str, size: int, mixture: synthetic.VectorMixture, seed: int = 0
) -> dict[str, Any]:
    """Write an index of exactly `size` chunks grown from the base index (see SYNTHETIC_NOTE);
    `mixture` was fitted to the base index's vectors."""
    base = store.open_snapshot(Path(base_dir))
    doc_ids = list(base.manifest["documents"])
    docs = [base.document(d) for d in doc_ids]
    chunks_of = {d: base.doc_chunks(d) for d in doc_ids}
    vectors = base.all_vectors()
    split = re.compile(r"(\w{4,})")
    parts_of = {d.id: split.split(d.text) for d in docs}
    pools: dict[int, list[str]] = {}
    for parts in parts_of.values():
        for word in parts[1::2]:
            pools.setdefault(len(word), []).append(word)
    rng = np.random.default_rng(seed)
    out_docs: list[Document] = []
    out_chunks: list[Chunk] = []
    out_rows: list[np.ndarray] = []
    copy = 0
    t_make = time.perf_counter()
    while len(out_chunks) < size:
        for doc in docs:
            if len(out_chunks) >= size:
                break
            take = chunks_of[doc.id][: size - len(out_chunks)]
            if copy == 0:
                new = doc
            else:
                text = _perturb(parts_of[doc.id], pools, rng)
                new = Document(
                    id=f"copy{copy:05d}/{doc.id}",
                    text=text,
                    title=doc.title,
                    source=f"synthetic copy {copy} of {doc.source}",
                    hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    date=doc.date,
                    place=doc.place,
                )
            out_docs.append(new)
            out_chunks.extend(
                Chunk(new.id, c.ord, c.start, c.end, new.text[c.start : c.end]) for _, c in take
            )
            rows = [row for row, _ in take]
            block = (
                vectors[rows] if copy == 0 else synthetic.draw(mixture, mixture.labels[rows], rng)
            )
            out_rows.append(block.astype(np.float32))
        copy += 1
    matrix = np.vstack(out_rows)
    manifest = build_manifest(
        out_docs,
        out_chunks,
        base.manifest["model"],
        base.manifest["dim"],
        ChunkingParams(**base.manifest["chunking"]),
    )
    manifest["synthetic"] = SYNTHETIC_NOTE.format(mixture=mixture.describe())
    base.close()
    make_s = time.perf_counter() - t_make
    t0 = time.perf_counter()
    with store.write_lock(Path(out_dir)):
        store.write_version(Path(out_dir), manifest, out_docs, out_chunks, matrix)
    write_s = time.perf_counter() - t0
    snap = store.open_snapshot(Path(out_dir))
    disk = store.disk_size(snap.path)
    snap.close()
    return {
        "chunks": len(out_chunks),
        "documents": len(out_docs),
        "copies": copy,
        "text_mb": sum(len(d.text.encode("utf-8")) for d in out_docs) / 1e6,
        "make_s": make_s,
        "write_s": write_s,
        "disk_mb": disk / 1e6,
        "build_peak_rss_mb": _rss_mb()["peak"],
    }


STORES = ("folder-flat", "folder-hnsw", "folder-ivf", "milvus")
RECALL_K = 10


def open_bench_store(kind: str, where: str) -> IndexStore:
    """The store of one kind at `where` (a folder; Milvus Lite keeps its file inside it)."""
    if kind == "milvus":
        from qa.store.milvus import MilvusStore

        Path(where).mkdir(parents=True, exist_ok=True)
        return MilvusStore(str(Path(where) / "milvus.db"), "bench")
    return store.FolderStore(Path(where), kind.removeprefix("folder-"))


def copy_scaled(flat_dir: str, kind: str, where: str) -> dict[str, Any]:
    """The flat folder as a store of another kind; the time that takes and its disk.

    Milvus gets a copy (`copy_index`). Another folder kind links the flat version's files (its
    chunk table and BM25 are what a full write would produce) and builds its own vector index
    from the same vectors: `write_s` is then that build alone."""
    source = store.open_snapshot(Path(flat_dir))
    if kind == "milvus":
        t0 = time.perf_counter()
        copy_index(source, open_bench_store(kind, where))
        write_s = time.perf_counter() - t0
        source.close()
        return {"write_s": write_s, "disk_mb": store.disk_size(Path(where)) / 1e6}
    import faiss

    vectors = source.all_vectors()
    version = source.path
    source.close()
    target = Path(where) / version.name
    shutil.copytree(version, target, copy_function=os.link)
    t0 = time.perf_counter()
    index = store.build_vector_index(kind.removeprefix("folder-"), vectors, vectors.shape[1])
    (target / "vectors.faiss").unlink()  # a link to the flat file: never write through it
    faiss.write_index(index, str(target / "vectors.faiss"))
    write_s = time.perf_counter() - t0
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").unlink()
    manifest["vector_index"] = kind.removeprefix("folder-")
    (target / "manifest.json").write_text(json.dumps(manifest))
    (Path(where) / "CURRENT").write_text(version.name + "\n")
    return {"write_s": write_s, "disk_mb": store.disk_size(Path(where)) / 1e6}


def query_scaled(
    index_dir: str,
    queries: list[dict],
    top_k: int,
    warmup: int = 3,
    kind: str = "folder-flat",
    exact: dict[str, list[list[tuple[str, int]]]] | None = None,
    probes: np.ndarray | None = None,
) -> dict:
    """Load an index in a fresh process and time asks and searches; memory as it goes.

    Returns the dense top RECALL_K, as (doc_id, ord), of each question and of each of `probes`
    (query vectors); with `exact` (the flat index's), this store's recall against it."""
    from qa.engine import Engine

    rss_start = _rss_mb()["rss"]
    engine = Engine(open_bench_store(kind, index_dir))
    engine.embedder.embed_query("warm up the model")
    rss_model = _rss_mb()["rss"]
    t0 = time.perf_counter()
    engine.snapshot()
    load_s = time.perf_counter() - t0
    rss_index = _rss_mb()["rss"]
    for q in queries[:warmup]:
        engine.ask(q["question"], history=q["history"], top_k=top_k)
    snap = engine.snapshot()
    ask_ms, rank_ms, dense_ms, top = [], [], [], []
    for q in queries:
        t0 = time.perf_counter()
        result = engine.ask(q["question"], history=q["history"], top_k=top_k)
        ask_ms.append((time.perf_counter() - t0) * 1e3)
        # Ranking alone, the query vector given: the part that grows with the index.
        vector = engine.embedder.embed_query(result.query)
        t0 = time.perf_counter()
        retrieval.search(snap, engine.embedder, result.query, top_k, query_vector=vector)
        rank_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        nearest = snap.dense_search(vector, RECALL_K)
        dense_ms.append((time.perf_counter() - t0) * 1e3)
        top.append([(c.doc_id, c.ord) for c in snap.chunks(list(nearest))])
    probe_top = []
    for vector in probes if probes is not None else ():
        nearest = snap.dense_search(vector, RECALL_K)
        probe_top.append([(c.doc_id, c.ord) for c in snap.chunks(list(nearest))])
    tops = {"questions": top, "probes": probe_top}
    recall = {}
    for name, got in tops.items():
        if exact is not None and got:
            hits = [len(set(map(tuple, e)) & set(t)) for e, t in zip(exact[name], got, strict=True)]
            recall[name] = sum(hits) / sum(len(e) for e in exact[name])
    mem = _rss_mb()
    return {
        "dense_top": tops,
        "recall_at_10": recall.get("questions"),
        "probe_recall_at_10": recall.get("probes"),
        "dense_ms": latency_stats(dense_ms),
        "load_s": load_s,
        "ask_ms": latency_stats(ask_ms),
        "rank_ms": latency_stats(rank_ms),
        "rss_start_mb": rss_start,
        "rss_model_mb": rss_model,
        "rss_index_loaded_mb": rss_index,
        "rss_end_mb": mem["rss"],
        "peak_rss_mb": mem["peak"],
        "index_rss_mb": mem["rss"] - rss_model,
    }


def bench_scale(
    sizes: Sequence[int],
    set_dir: Path,
    n_queries: int = 50,
    top_k: int | None = None,
    work_dir: Path | None = None,
    say: Say = quiet,
    stores: Sequence[str] = ("folder-flat",),
    limits: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Index/query latency, memory and disk at growing sizes (see SYNTHETIC_NOTE); a store
    named in `limits` is measured only up to its size there."""
    from qa.config import get_settings

    settings = get_settings()
    top_k = top_k or settings.retrieval.top_k
    embedder = default_embedder()
    base_dir = default_index_dir(set_dir)
    eval_set = load_set(set_dir)
    say(f"base index {base_dir} (incremental build of the corpus of {eval_set.name})")
    build_index(eval_set, base_dir, embedder)
    base = store.open_snapshot(base_dir)
    sample_rows = list(range(min(256, base.n_chunks)))
    titles = {d: m["title"] for d, m in base.manifest["documents"].items()}
    sample = [manifest.embed_text(titles[c.doc_id], c.text) for c in base.chunks(sample_rows)]
    base_chunks = base.n_chunks
    real = base.all_vectors()
    base.close()
    mixture = synthetic.fit_mixture(real)
    probes = synthetic.draw_any(mixture, PROBES, np.random.default_rng(1))  # never indexed
    neighbours = {
        "real": synthetic.neighbour_stats(real),
        "synthetic": synthetic.neighbour_stats(
            synthetic.draw(mixture, mixture.labels, np.random.default_rng(2))
        ),
    }
    model = encoder_model(embedder)
    batch = settings.encoders.embed_batch_size
    model.encode(sample[:batch], batch_size=batch)
    t0 = time.perf_counter()
    model.encode(sample, batch_size=batch, normalize_embeddings=True)
    floor_rate = len(sample) / (time.perf_counter() - t0)
    questions = [q for q in load_questions(eval_set) if not q.unanswerable][:n_queries]
    queries = [{"question": q.question, "history": q.messages()} for q in questions]

    rows = []
    skipped: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="qa-bench-scale-", dir=work_dir))
    spawn = get_context("spawn")  # a fresh process per step: clean memory figures, no fork+torch
    try:
        for size in sizes:
            out_dir = tmp / f"n{size}"
            say(f"size {size}: writing the index")
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                job = pool.submit(build_scaled, str(base_dir), str(out_dir), size, mixture)
                built = job.result()
            say(
                f"size {size}: written in {built['write_s']:.1f} s; "
                f"querying ({len(queries)} questions)"
            )
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                job = pool.submit(
                    query_scaled, str(out_dir), queries, top_k, 3, "folder-flat", None, probes
                )
                queried = job.result()
            exact = queried.pop("dense_top")
            est = built["chunks"] / floor_rate
            if "folder-flat" in stores:
                rows.append(
                    {
                        "size": size,
                        "store": "folder-flat",
                        **built,
                        "embed_est_s": est,
                        **queried,
                        "recall_at_10": 1.0,
                        "probe_recall_at_10": 1.0,
                    }
                )
            for kind in (k for k in stores if k != "folder-flat"):
                limit = (limits or {}).get(kind)
                if limit is not None and size > limit:
                    skipped.append({"store": kind, "size": size, "limit": limit})
                    say(f"size {size}: {kind} skipped (measured up to {limit})")
                    continue
                where = tmp / f"n{size}-{kind}"
                say(f"size {size}: copying into {kind}")
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    copied = pool.submit(copy_scaled, str(out_dir), kind, str(where)).result()
                say(f"size {size}: {kind} written in {copied['write_s']:.1f} s; querying")
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    job = pool.submit(
                        query_scaled, str(where), queries, top_k, 3, kind, exact, probes
                    )
                    other = job.result()
                other.pop("dense_top")
                rows.append(
                    {"size": size, "store": kind, **built, **copied, "embed_est_s": est, **other}
                )
                shutil.rmtree(where, ignore_errors=True)
            shutil.rmtree(out_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "bench": "scale",
        "info": run_info() | {"set": str(set_dir), "top_k": top_k, "queries": len(queries)},
        "note": SYNTHETIC_NOTE.format(mixture=mixture.describe()),
        "neighbours": neighbours,
        "probes": len(probes),
        "base_chunks": base_chunks,
        "floor_chunks_per_s": floor_rate,
        "rows": rows,
        "skipped": skipped,
    }


def format_scale(r: dict[str, Any]) -> str:
    header = [
        "store",
        "chunks",
        "write s",
        "embed s (est.)",
        "ask p50",
        "ask p95",
        "rank p50",
        "rank p95",
        "dense p50",
        "recall@10 questions",
        "recall@10 held-out",
        "index RSS MB",
        "peak RSS MB",
        "disk MB",
    ]
    rows = [
        [
            row.get("store", "folder-flat"),
            str(row["chunks"]),
            f"{row['write_s']:.1f}",
            f"{row['embed_est_s']:.0f}",
            f"{row['ask_ms']['p50']:.1f}",
            f"{row['ask_ms']['p95']:.1f}",
            f"{row['rank_ms']['p50']:.1f}",
            f"{row['rank_ms']['p95']:.1f}",
            f"{row['dense_ms']['p50']:.2f}" if "dense_ms" in row else "-",
            f"{row['recall_at_10']:.3f}" if row.get("recall_at_10") is not None else "-",
            f"{row['probe_recall_at_10']:.3f}" if row.get("probe_recall_at_10") else "-",
            f"{row['index_rss_mb']:.0f}",
            f"{row['peak_rss_mb']:.0f}",
            f"{row['disk_mb']:.1f}",
        ]
        for row in r["rows"]
    ]
    return "\n".join(
        [
            f"qa bench scale: grown from {r['info']['set']} ({r['base_chunks']} real chunks), "
            f"{r['info']['queries']} questions per size, top_k {r['info']['top_k']}; "
            f"bare encoder {r['floor_chunks_per_s']:.1f} chunks/s",
            context_line(r),
            "",
            markdown_table(header, rows),
            "",
            "Latencies in ms, warm. ask = Engine.ask; rank = retrieval.search (BM25 + dense + "
            "fusion + passages) with the query vector given, i.e. without the encoder; dense = "
            f"the store's dense top-{RECALL_K} alone; recall@10 = share of the exact (flat) "
            f"dense top-{RECALL_K} that the store's dense search returns, for the questions' real "
            f"vectors and for {r.get('probes', 0)} held-out synthetic vectors. write = writing "
            "the index (hnsw, ivf: building the vector index from the flat folder's vectors, the "
            "rest of the folder is the flat one's; milvus: copying the flat folder in). "
            "index RSS = resident memory added by loading the index and asking (model "
            "excluded; Milvus Lite runs in its own process, not counted); peak RSS = the "
            "querying process's peak.",
            r["note"],
            _neighbours_line(r),
            "".join(
                f"Not run: {s['store']} at {s['size']} chunks (limited to {s['limit']}). "
                for s in r.get("skipped", ())
            ),
            MILVUS_NOTE if any(row.get("store") == "milvus" for row in r["rows"]) else "",
        ]
    )


def _neighbours_line(r: dict[str, Any]) -> str:
    n = r.get("neighbours")
    if not n:
        return ""
    return (
        "Synthetic against real vectors, as many draws as real chunks (median cosine to the "
        f"nearest / 10th nearest other vector): real {n['real']['nn1_cos_p50']:.3f} / "
        f"{n['real']['nn10_cos_p50']:.3f}, synthetic {n['synthetic']['nn1_cos_p50']:.3f} / "
        f"{n['synthetic']['nn10_cos_p50']:.3f}."
    )


def plot_scale(r: dict[str, Any], path: Path) -> Path:
    """Build time, query latency, recall and memory against the number of chunks, per store."""
    plt = pyplot()
    fig, (a, b, c, d) = plt.subplots(1, 4, figsize=(20, 4.6))
    kinds = list(dict.fromkeys(row.get("store", "folder-flat") for row in r["rows"]))
    for kind in kinds:
        rows = [row for row in r["rows"] if row.get("store", "folder-flat") == kind]
        n = [row["chunks"] for row in rows]
        a.plot(n, [row["write_s"] for row in rows], "o-", label=f"{kind}: write")
        b.plot(n, [row["rank_ms"]["p50"] for row in rows], "o-", label=f"{kind}: rank p50")
        b.plot(n, [row["ask_ms"]["p50"] for row in rows], "s--", label=f"{kind}: ask p50")
        c.plot(n, [row.get("recall_at_10") or 0 for row in rows], "o-", label=f"{kind}: questions")
        c.plot(
            n,
            [row.get("probe_recall_at_10") or 0 for row in rows],
            "s--",
            label=f"{kind}: held-out",
        )
        d.plot(n, [row["disk_mb"] for row in rows], "s--", label=f"{kind}: disk")
        d.plot(n, [row["index_rss_mb"] for row in rows], "o-", label=f"{kind}: index RSS")
    flat = [row for row in r["rows"] if row.get("store", "folder-flat") == kinds[0]]
    a.plot(
        [row["chunks"] for row in flat],
        [row["embed_est_s"] for row in flat],
        "k:",
        label="embed (est. at floor)",
    )
    a.set(xscale="log", yscale="log", xlabel="chunks", ylabel="seconds", title="Build time")
    b.set(xscale="log", yscale="log", xlabel="chunks", ylabel="ms per question")
    b.set_title("Query latency (warm)")
    c.set(xscale="log", ylim=(0, 1.02), xlabel="chunks", ylabel="recall@10 vs exact")
    c.set_title("Dense recall@10 against flat")
    d.set(xscale="log", yscale="log", xlabel="chunks", ylabel="MB", title="Memory and disk")
    for ax in (a, b, c, d):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"qa bench scale (synthetic growth of {Path(r['info']['set']).name}; "
        f"embedding estimated at {r['floor_chunks_per_s']:.0f} chunks/s)"
    )
    fig.tight_layout()
    return save_figure(fig, path)
