"""`qa bench`: speed figures anyone can rerun, each beside its floor measured in the same run.

- `bench_index`: the indexing pipeline against the bare encoder on exactly the same texts;
- `bench_ask`: `Engine.ask` latency against one query encode + one FAISS search;
- `bench_scale`: build time, query latency, memory and disk as the index grows.

Timings on a shared machine are noisy: floor and pipeline alternate in one process and the
best and the median are reported. Each bench returns a JSON-ready dict; `write_json` and the
`plot_*` functions store it, `format_*` renders the table the CLI prints.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from qa import chat, ingest, retrieval, store
from qa.chunking import ChunkingParams, chunk_text
from qa.embedding import Embedder, MiniLMEmbedder, default_embedder
from qa.evaluation import (
    EvalQuestion,
    chunking_params,
    default_index_dir,
    load_questions,
    markdown_table,
    percentile,
    run_info,
)
from qa.indexing import build_manifest
from qa.models import Chunk, Document

TARGET_INDEX_RATIO = 0.85  # pipeline throughput / bare encoder throughput, at least
TARGET_NOOP_SHARE = 0.02  # a no-change re-index, at most this share of a full build
TARGET_ASK_P50_MS = 60.0

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def write_json(data: dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": float(np.mean(values)) if len(values) else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
    }


def _model(embedder: Embedder):
    if not isinstance(embedder, MiniLMEmbedder):
        raise TypeError("the floor is the bundled SentenceTransformer; use MiniLMEmbedder")
    return embedder.model


# ---------------------------------------------------------------- index


def embedded_texts(
    corpus: Path, embedder: Embedder, params: ChunkingParams
) -> tuple[list[str], int, int]:
    """Exactly what `index_paths` sends to the encoder for a fresh index of `corpus`:
    `store.embed_text(title, chunk.text)` per chunk, identical documents once.
    Returns the texts, the number of documents and the bytes of document text."""
    files, _ = ingest.discover([corpus])
    texts: list[str] = []
    seen: set[str] = set()
    n_docs = n_bytes = 0
    for file in files:
        doc = ingest.load(file.path, file.doc_id)
        n_docs += 1
        n_bytes += len(doc.text.encode("utf-8"))
        if doc.hash in seen:
            continue
        seen.add(doc.hash)
        chunks = chunk_text(doc.id, doc.text, embedder.count_tokens, params)
        texts.extend(store.embed_text(doc.title, c.text) for c in chunks)
    return texts, n_docs, n_bytes


def bench_index(
    corpus: Path,
    embedder: MiniLMEmbedder | None = None,
    batch_size: int | None = None,
    repeats: int = 2,
    noop_repeats: int = 3,
    say: Say = _quiet,
) -> dict[str, Any]:
    """Full indexing pipeline vs the bare encoder on the same chunks, alternating."""
    from qa.config import get_settings
    from qa.indexing import index_paths

    embedder = embedder or default_embedder()
    batch_size = batch_size or get_settings().embed_batch_size
    params = chunking_params()
    texts, n_docs, n_bytes = embedded_texts(corpus, embedder, params)
    if not texts:
        raise ValueError(f"{corpus} holds no indexable text")
    model = _model(embedder)
    model.encode(texts[:batch_size], batch_size=batch_size)  # warm up: first call pays setup

    def floor() -> float:
        t0 = time.perf_counter()
        model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return time.perf_counter() - t0

    floors: list[float] = []
    pipelines: list[float] = []
    noops: list[float] = []
    embedded = n_chunks = 0
    for i in range(repeats + 1):  # floor, pipeline, floor, pipeline, ..., floor
        say(f"floor run {i + 1}/{repeats + 1}: encoding {len(texts)} texts")
        floors.append(floor())
        if i == repeats:
            break
        say(f"pipeline run {i + 1}/{repeats}: index_paths into a fresh index")
        with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
            index_dir = Path(tmp) / "index"
            t0 = time.perf_counter()
            report = index_paths([corpus], index_dir, embedder, params, batch_size=batch_size)
            pipelines.append(time.perf_counter() - t0)
            embedded, n_chunks = report.embedded_chunks, report.n_chunks
            if embedded != len(texts):
                raise RuntimeError(
                    f"the pipeline embedded {embedded} chunks, the floor {len(texts)}: "
                    "embedded_texts() no longer matches indexing"
                )
            for _ in range(noop_repeats if i == 0 else 0):
                t0 = time.perf_counter()
                again = index_paths([corpus], index_dir, embedder, params, batch_size=batch_size)
                noops.append(time.perf_counter() - t0)
                if again.embedded_chunks:
                    raise RuntimeError("a no-change re-index embedded chunks")
    best_floor, med_floor = min(floors), statistics.median(floors)
    best_pipe, med_pipe = min(pipelines), statistics.median(pipelines)
    noop = statistics.median(noops)
    mb = n_bytes / 1e6
    return {
        "bench": "index",
        "info": run_info()
        | {
            "corpus": str(corpus),
            "model": embedder.name,
            "batch_size": batch_size,
            "torch_threads": _torch_threads(),
        },
        "documents": n_docs,
        "chunks": n_chunks,
        "embedded_chunks": embedded,
        "text_mb": round(mb, 3),
        "runs": {"floor_s": floors, "pipeline_s": pipelines, "noop_reindex_s": noops},
        "floor": {
            "best_s": best_floor,
            "median_s": med_floor,
            "chunks_per_s": len(texts) / best_floor,
            "mb_per_s": mb / best_floor,
        },
        "pipeline": {
            "best_s": best_pipe,
            "median_s": med_pipe,
            "chunks_per_s": embedded / best_pipe,
            "mb_per_s": mb / best_pipe,
        },
        "ratio_best": best_floor / best_pipe,
        "ratio_median": med_floor / med_pipe,
        "noop_reindex_s": noop,
        "noop_share": noop / med_pipe,
        "targets": {"ratio_at_least": TARGET_INDEX_RATIO, "noop_share_below": TARGET_NOOP_SHARE},
        "meets": {
            "ratio": best_floor / best_pipe >= TARGET_INDEX_RATIO,
            "noop_share": noop / med_pipe < TARGET_NOOP_SHARE,
        },
    }


def format_index(r: dict[str, Any]) -> str:
    f, p = r["floor"], r["pipeline"]
    rows = [
        ["floor: bare encode (s)", f"{f['best_s']:.2f}", f"{f['median_s']:.2f}", ""],
        ["pipeline: index_paths (s)", f"{p['best_s']:.2f}", f"{p['median_s']:.2f}", ""],
        ["floor chunks/s", f"{f['chunks_per_s']:.1f}", "", ""],
        ["pipeline chunks/s", f"{p['chunks_per_s']:.1f}", "", ""],
        ["pipeline MB/s of text", f"{p['mb_per_s']:.3f}", "", ""],
        [
            "ratio pipeline/floor",
            f"{r['ratio_best']:.3f}",
            f"{r['ratio_median']:.3f}",
            f">= {TARGET_INDEX_RATIO} {_verdict(r['meets']['ratio'])}",
        ],
        ["no-change re-index (s)", "", f"{r['noop_reindex_s']:.3f}", ""],
        [
            "no-change re-index / full build",
            "",
            f"{r['noop_share']:.2%}",
            f"< {TARGET_NOOP_SHARE:.0%} {_verdict(r['meets']['noop_share'])}",
        ],
    ]
    return "\n".join(
        [
            f"qa bench index: {r['info']['corpus']}: {r['documents']} documents, "
            f"{r['chunks']} chunks, {r['text_mb']:.2f} MB of text, batch {r['info']['batch_size']}",
            f"runs (s), in order: floor {_list(r['runs']['floor_s'])}; "
            f"pipeline {_list(r['runs']['pipeline_s'])}; "
            f"no-change re-index {_list(r['runs']['noop_reindex_s'], 3)}",
            _context(r),
            "",
            markdown_table(["measure", "best", "median", "target"], rows),
        ]
    )


def _context(r: dict[str, Any]) -> str:
    i = r["info"]
    threads = f", torch threads {i['torch_threads']}" if "torch_threads" in i else ""
    return (
        f"{i['created_at']}, commit {i['commit']}, {i['machine']}{threads}, "
        f"load average at the end {i['load_avg_1_5_15']}"
    )


def _verdict(ok: bool) -> str:
    return "(ok)" if ok else "(MISSED)"


def _list(values: Sequence[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


# ---------------------------------------------------------------- ask


def bench_ask(
    index_dir: Path,
    questions: Sequence[EvalQuestion],
    n: int | None = None,
    top_k: int | None = None,
    warmup: int = 3,
    say: Say = _quiet,
) -> dict[str, Any]:
    """Warm `Engine.ask` latency vs one query encode + one FAISS search, same questions."""
    from qa.engine import Engine

    engine = Engine(index_dir)
    top_k = top_k or engine.settings.top_k
    snap = engine.snapshot()
    questions = list(questions)[: n or None]
    for q in questions[:warmup]:
        engine.ask(q.question, history=q.messages(), top_k=top_k)
    say(f"asking {len(questions)} questions (warm), floor and ask alternating")
    floor_ms, ask_ms = [], []
    parts: dict[str, list[float]] = {"rewrite": [], "retrieve": [], "answer": []}
    for i, q in enumerate(questions):
        query = chat.rewrite(q.question, q.messages())
        for step in ("floor", "ask") if i % 2 == 0 else ("ask", "floor"):
            t0 = time.perf_counter()
            if step == "floor":
                vector = engine.embedder.embed_query(query)
                snap.vectors.search(vector.reshape(1, -1), top_k)
                floor_ms.append((time.perf_counter() - t0) * 1e3)
            else:
                result = engine.ask(q.question, history=q.messages(), top_k=top_k)
                ask_ms.append((time.perf_counter() - t0) * 1e3)
                for part, values in parts.items():
                    values.append(result.timings_ms.get(part, 0.0))
    ask, fl = _stats(ask_ms), _stats(floor_ms)
    return {
        "bench": "ask",
        "info": run_info()
        | {
            "index_dir": str(index_dir),
            "index_version": snap.version,
            "top_k": top_k,
            "torch_threads": _torch_threads(),
        },
        "questions": len(questions),
        "chunks": snap.n_chunks,
        "ask_ms": ask,
        "floor_ms": fl,
        "ask_parts_p50_ms": {k: percentile(v, 50) for k, v in parts.items()},
        # Paired per question: the time Engine.ask spends beyond its floor.
        "overhead_p50_ms": percentile([a - f for a, f in zip(ask_ms, floor_ms, strict=True)], 50),
        "samples": {"ask_ms": ask_ms, "floor_ms": floor_ms},
        "targets": {"ask_p50_ms_below": TARGET_ASK_P50_MS},
        "meets": {"ask_p50": ask["p50"] < TARGET_ASK_P50_MS},
    }


def format_ask(r: dict[str, Any]) -> str:
    a, f, parts = r["ask_ms"], r["floor_ms"], r["ask_parts_p50_ms"]
    rows = [
        [
            "Engine.ask",
            f"{a['p50']:.1f}",
            f"{a['p95']:.1f}",
            f"{a['mean']:.1f}",
            f"p50 < {TARGET_ASK_P50_MS:.0f} {_verdict(r['meets']['ask_p50'])}",
        ],
        [
            "floor: 1 query encode + FAISS top-k",
            f"{f['p50']:.1f}",
            f"{f['p95']:.1f}",
            f"{f['mean']:.1f}",
            "",
        ],
        ["Engine.ask - floor, per question", f"{r['overhead_p50_ms']:.1f}", "", "", ""],
    ]
    return "\n".join(
        [
            f"qa bench ask: {r['info']['index_dir']} ({r['chunks']} chunks), "
            f"{r['questions']} questions, top_k {r['info']['top_k']}, warm, extractive",
            _context(r),
            "",
            markdown_table(["ms per question", "p50", "p95", "mean", "target"], rows),
            "",
            "Engine.ask parts, p50 ms: "
            + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
            + " (retrieve includes the query encode)",
        ]
    )


def plot_ask(r: dict[str, Any], path: Path) -> Path:
    """Latency distributions (CDF) of Engine.ask and of its floor."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for key, label, color in (
        ("ask_ms", "Engine.ask", "tab:green"),
        ("floor_ms", "floor: query encode + FAISS search", "tab:gray"),
    ):
        values = np.sort(r["samples"][key])
        ax.plot(values, np.arange(1, len(values) + 1) / len(values), color=color, label=label)
    ax.axvline(
        TARGET_ASK_P50_MS, color="tab:red", ls=":", label=f"target p50 {TARGET_ASK_P50_MS:.0f} ms"
    )
    ax.axhline(0.5, color="k", lw=0.5, alpha=0.4)
    ax.set(xlabel="latency per question (ms)", ylabel="share of questions at or below")
    ax.set_title(f"qa bench ask: {r['questions']} questions, {r['chunks']} chunks (warm)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------- scale

NOISE_SIGMA = 0.015  # per dimension: a copy's vector keeps cosine ~0.96 to its original
WORD_SWAP = 0.2  # share of a copy's long words replaced by corpus words of the same length
SYNTHETIC_NOTE = (
    "Synthetic growth: the real corpus's chunks are embedded once; copy c>0 of a document has "
    f"{WORD_SWAP:.0%} of its words (4+ letters) replaced by other corpus words of the same "
    f"length (offsets stay exact, BM25 sees new text) and its chunk vectors moved by Gaussian "
    f"noise (sigma {NOISE_SIGMA} per dimension) and renormalized. 'write' is the measured "
    "time to write the index version (SQLite, FAISS, BM25, fsync); 'embed (est.)' is chunks / "
    "the bare encoder's chunks/s measured in this run."
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


def build_scaled(base_dir: str, out_dir: str, size: int, seed: int = 0) -> dict[str, Any]:
    """Write an index of exactly `size` chunks grown from the base index (see SYNTHETIC_NOTE)."""
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
            block = vectors[[row for row, _ in take]]
            if copy:
                block = block + rng.normal(0, NOISE_SIGMA, block.shape).astype(np.float32)
                block /= np.linalg.norm(block, axis=1, keepdims=True)
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
    manifest["synthetic"] = SYNTHETIC_NOTE
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


def query_scaled(index_dir: str, queries: list[dict], top_k: int, warmup: int = 3) -> dict:
    """Load an index in a fresh process and time asks and searches; memory as it goes."""
    from qa.engine import Engine

    rss_start = _rss_mb()["rss"]
    engine = Engine(Path(index_dir))
    engine.embedder.embed_query("warm up the model")
    rss_model = _rss_mb()["rss"]
    t0 = time.perf_counter()
    engine.snapshot()
    load_s = time.perf_counter() - t0
    rss_index = _rss_mb()["rss"]
    for q in queries[:warmup]:
        engine.ask(q["question"], history=q["history"], top_k=top_k)
    snap = engine.snapshot()
    ask_ms, rank_ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        result = engine.ask(q["question"], history=q["history"], top_k=top_k)
        ask_ms.append((time.perf_counter() - t0) * 1e3)
        # Ranking alone, the query vector given: the part that grows with the index.
        vector = engine.embedder.embed_query(result.query)
        t0 = time.perf_counter()
        retrieval.search(snap, engine.embedder, result.query, top_k, query_vector=vector)
        rank_ms.append((time.perf_counter() - t0) * 1e3)
    mem = _rss_mb()
    return {
        "load_s": load_s,
        "ask_ms": _stats(ask_ms),
        "rank_ms": _stats(rank_ms),
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
    say: Say = _quiet,
) -> dict[str, Any]:
    """Index/query latency, memory and disk at growing sizes (see SYNTHETIC_NOTE)."""
    from qa.config import get_settings
    from qa.indexing import index_paths

    settings = get_settings()
    top_k = top_k or settings.top_k
    embedder = default_embedder()
    base_dir = default_index_dir(set_dir)
    say(f"base index {base_dir} (incremental build of {set_dir}/corpus)")
    index_paths([Path(set_dir) / "corpus"], base_dir, embedder, chunking_params())
    base = store.open_snapshot(base_dir)
    sample_rows = list(range(min(256, base.n_chunks)))
    titles = {d: m["title"] for d, m in base.manifest["documents"].items()}
    sample = [store.embed_text(titles[c.doc_id], c.text) for c in base.chunks(sample_rows)]
    base_chunks = base.n_chunks
    base.close()
    model = _model(embedder)
    batch = settings.embed_batch_size
    model.encode(sample[:batch], batch_size=batch)
    t0 = time.perf_counter()
    model.encode(sample, batch_size=batch, normalize_embeddings=True)
    floor_rate = len(sample) / (time.perf_counter() - t0)
    questions = [q for q in load_questions(set_dir) if not q.unanswerable][:n_queries]
    queries = [{"question": q.question, "history": q.messages()} for q in questions]

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="qa-bench-scale-", dir=work_dir))
    spawn = get_context("spawn")  # a fresh process per step: clean memory figures, no fork+torch
    try:
        for size in sizes:
            out_dir = tmp / f"n{size}"
            say(f"size {size}: writing the index")
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                built = pool.submit(build_scaled, str(base_dir), str(out_dir), size).result()
            say(
                f"size {size}: written in {built['write_s']:.1f} s; "
                f"querying ({len(queries)} questions)"
            )
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                queried = pool.submit(query_scaled, str(out_dir), queries, top_k).result()
            rows.append(
                {"size": size, **built, "embed_est_s": built["chunks"] / floor_rate, **queried}
            )
            shutil.rmtree(out_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "bench": "scale",
        "info": run_info() | {"set": str(set_dir), "top_k": top_k, "queries": len(queries)},
        "note": SYNTHETIC_NOTE,
        "base_chunks": base_chunks,
        "floor_chunks_per_s": floor_rate,
        "rows": rows,
    }


def format_scale(r: dict[str, Any]) -> str:
    header = [
        "chunks",
        "write s",
        "embed s (est.)",
        "ask p50",
        "ask p95",
        "rank p50",
        "rank p95",
        "index RSS MB",
        "peak RSS MB",
        "disk MB",
    ]
    rows = [
        [
            str(row["chunks"]),
            f"{row['write_s']:.1f}",
            f"{row['embed_est_s']:.0f}",
            f"{row['ask_ms']['p50']:.1f}",
            f"{row['ask_ms']['p95']:.1f}",
            f"{row['rank_ms']['p50']:.1f}",
            f"{row['rank_ms']['p95']:.1f}",
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
            _context(r),
            "",
            markdown_table(header, rows),
            "",
            "Latencies in ms, warm. ask = Engine.ask; rank = retrieval.search (BM25 + FAISS + "
            "fusion + passages) with the query vector given, i.e. without the encoder. "
            "index RSS = resident memory added by loading the index and asking (model "
            "excluded); peak RSS = the querying process's peak.",
            r["note"],
        ]
    )


def plot_scale(r: dict[str, Any], path: Path) -> Path:
    """Build time, query latency and memory against the number of chunks."""
    plt = _pyplot()
    n = [row["chunks"] for row in r["rows"]]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.6))
    a.plot(n, [row["write_s"] for row in r["rows"]], "o-", label="write index (measured)")
    a.plot(n, [row["embed_est_s"] for row in r["rows"]], "s--", label="embed (est. at floor)")
    a.set(xscale="log", yscale="log", xlabel="chunks", ylabel="seconds", title="Build time")
    for key, label, color in (
        ("ask_ms", "Engine.ask", "tab:green"),
        ("rank_ms", "rank only (no encoder)", "tab:purple"),
    ):
        b.plot(n, [row[key]["p50"] for row in r["rows"]], "o-", color=color, label=f"{label} p50")
        b.plot(n, [row[key]["p95"] for row in r["rows"]], "s--", color=color, label=f"{label} p95")
    b.set(xscale="log", yscale="log", xlabel="chunks", ylabel="ms per question")
    b.set_title("Query latency (warm)")
    c.plot(n, [row["index_rss_mb"] for row in r["rows"]], "o-", label="RSS of the loaded index")
    c.plot(n, [row["peak_rss_mb"] for row in r["rows"]], "^-", label="peak RSS, querying")
    c.plot(n, [row["build_peak_rss_mb"] for row in r["rows"]], "v-", label="peak RSS, building")
    c.plot(n, [row["disk_mb"] for row in r["rows"]], "s--", label="index on disk")
    c.set(xscale="log", yscale="log", xlabel="chunks", ylabel="MB", title="Memory and disk")
    for ax in (a, b, c):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"qa bench scale (synthetic growth of {Path(r['info']['set']).name}; "
        f"embedding estimated at {r['floor_chunks_per_s']:.0f} chunks/s)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def stderr_say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
