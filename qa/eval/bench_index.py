"""`qa bench index`: the indexing pipeline against the bare encoder on exactly the same texts.

Floor and pipeline alternate in one process (floor, pipeline, floor, ...); the best and the
median are reported, with the time of a no-change re-index.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.encoders.embedding import Embedder, default_embedder
from qa.eval.bench_runtimes import bench_runtimes, format_runtimes
from qa.eval.report import markdown_table, run_info
from qa.eval.sets import chunking_params
from qa.eval.timing import (
    Say,
    context_line,
    encoder_model,
    quiet,
    seconds_list,
    torch_threads,
    verdict,
)
from qa.sources import ingest
from qa.sources.chunking import ChunkingParams, chunk_text
from qa.store import manifest

TARGET_INDEX_RATIO = 0.85  # pipeline throughput / bare encoder throughput, at least
TARGET_NOOP_SHARE = 0.02  # a no-change re-index, at most this share of a full build


def embedded_texts(
    corpus: Sequence[Path], embedder: Embedder, params: ChunkingParams
) -> tuple[list[str], int, int]:
    """Exactly what `index_paths` sends to the encoder for a fresh index of `corpus` (files and
    folders): `manifest.embed_text(title, chunk.text)` per chunk, identical documents once.
    Returns the texts, the number of documents and the bytes of document text."""
    files, _ = ingest.discover(corpus)
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
        texts.extend(manifest.embed_text(doc.title, c.text) for c in chunks)
    return texts, n_docs, n_bytes


def bench_index(
    corpus: Path | Sequence[Path],
    embedder: Embedder | None = None,
    batch_size: int | None = None,
    repeats: int = 2,
    noop_repeats: int = 3,
    say: Say = quiet,
    runtimes: Sequence[str] = (),
    questions: Sequence[str] = (),
) -> dict[str, Any]:
    """Full indexing pipeline vs the bare encoder on the same chunks, alternating."""
    from qa.config import get_settings
    from qa.indexing import index_paths

    corpus = [Path(corpus)] if isinstance(corpus, str | Path) else [Path(p) for p in corpus]
    embedder = embedder or default_embedder()
    batch_size = batch_size or get_settings().encoders.embed_batch_size
    params = chunking_params()
    texts, n_docs, n_bytes = embedded_texts(corpus, embedder, params)
    if not texts:
        raise ValueError(f"{_names(corpus)} holds no indexable text")
    model = encoder_model(embedder)  # the bare torch fp32 model, whatever QA_EMBED_BACKEND is
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
            report = index_paths(corpus, index_dir, embedder, params, batch_size=batch_size)
            pipelines.append(time.perf_counter() - t0)
            embedded, n_chunks = report.embedded_chunks, report.n_chunks
            if embedded != len(texts):
                raise RuntimeError(
                    f"the pipeline embedded {embedded} chunks, the floor {len(texts)}: "
                    "embedded_texts() no longer matches indexing"
                )
            for _ in range(noop_repeats if i == 0 else 0):
                t0 = time.perf_counter()
                again = index_paths(corpus, index_dir, embedder, params, batch_size=batch_size)
                noops.append(time.perf_counter() - t0)
                if again.embedded_chunks:
                    raise RuntimeError("a no-change re-index embedded chunks")
    by_runtime = (
        bench_runtimes(texts, questions, runtimes, batch_size, say=say) if runtimes else None
    )
    best_floor, med_floor = min(floors), statistics.median(floors)
    best_pipe, med_pipe = min(pipelines), statistics.median(pipelines)
    noop = statistics.median(noops)
    mb = n_bytes / 1e6
    return {
        "bench": "index",
        "info": run_info()
        | {
            "corpus": _names(corpus),
            "model": embedder.name,
            "embed_backend": embedder.backend,
            "batch_size": batch_size,
            "torch_threads": torch_threads(),
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
        "runtimes": by_runtime,
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
            f">= {TARGET_INDEX_RATIO} {verdict(r['meets']['ratio'])}",
        ],
        ["no-change re-index (s)", "", f"{r['noop_reindex_s']:.3f}", ""],
        [
            "no-change re-index / full build",
            "",
            f"{r['noop_share']:.2%}",
            f"< {TARGET_NOOP_SHARE:.0%} {verdict(r['meets']['noop_share'])}",
        ],
    ]
    return "\n".join(
        [
            f"qa bench index: {r['info']['corpus']}: {r['documents']} documents, "
            f"{r['chunks']} chunks, {r['text_mb']:.2f} MB of text, "
            f"batch {r['info']['batch_size']}, pipeline on {r['info'].get('embed_backend')}",
            f"runs (s), in order: floor {seconds_list(r['runs']['floor_s'])}; "
            f"pipeline {seconds_list(r['runs']['pipeline_s'])}; "
            f"no-change re-index {seconds_list(r['runs']['noop_reindex_s'], 3)}",
            context_line(r),
            "",
            markdown_table(["measure", "best", "median", "target"], rows),
            *(["", format_runtimes(r["runtimes"])] if r.get("runtimes") else []),
        ]
    )


def _names(paths: Sequence[Path]) -> str:
    return ", ".join(str(p) for p in paths)
