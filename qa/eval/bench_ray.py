"""`qa bench ray`: embedding a corpus with Ray Data actors beside the local path (the floor).

The same texts `index_paths` would embed are encoded locally, then by 1 and by 2 encoder actors
on a local Ray; chunks/s and the cosine of each Ray vector to the local one are reported. Ray's
start is timed apart; an actor's model load falls inside its run (it is part of the cost).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa.encoders.embedding import default_embedder
from qa.eval.bench_index import embedded_texts
from qa.eval.report import markdown_table, run_info
from qa.eval.timing import Say, context_line, quiet
from qa.sources.chunking import ChunkingParams


def bench_ray(
    corpus: Sequence[Path],
    actors: Sequence[int] = (1, 2),
    batch_size: int = 32,
    num_cpus: int | None = None,
    say: Say = quiet,
) -> dict[str, Any]:
    """Local embedding vs Ray actor pools of the given sizes, on the same texts."""
    from qa.encoders.ray import RayEmbedder, ray_module, start_ray

    ray = ray_module()

    local = default_embedder()
    texts, n_docs, _ = embedded_texts(corpus, local, ChunkingParams())
    say(f"{len(texts)} chunks of {n_docs} documents; local encode")
    local.embed(texts[:batch_size], batch_size)  # load the model outside the timing
    t0 = time.perf_counter()
    reference = local.embed(texts, batch_size)
    local_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    start_ray(None, num_cpus)
    start_s = time.perf_counter() - t0
    runs = []
    try:
        for n in actors:
            say(f"Ray Data, {n} actor(s)")
            embedder = RayEmbedder(local, actors=n, num_cpus=num_cpus)
            t0 = time.perf_counter()
            vectors = embedder.embed(texts, batch_size)
            seconds = time.perf_counter() - t0
            cosine = (vectors * reference).sum(axis=1)
            runs.append(
                {
                    "actors": n,
                    "seconds": seconds,
                    "chunks_per_s": len(texts) / seconds,
                    "min_cosine": float(cosine.min()),
                    "max_abs_diff": float(np.abs(vectors - reference).max()),
                }
            )
    finally:
        ray.shutdown()
    return {
        "bench": "ray",
        "info": run_info() | {"corpus": [str(c) for c in corpus], "batch_size": batch_size},
        "chunks": len(texts),
        "local": {"seconds": local_s, "chunks_per_s": len(texts) / local_s},
        "ray_start_s": start_s,
        "runs": runs,
    }


def format_ray(r: dict[str, Any]) -> str:
    rows = [
        [
            "local (floor)",
            f"{r['local']['seconds']:.1f}",
            f"{r['local']['chunks_per_s']:.1f}",
            "1",
            "1",
        ]
    ]
    rows += [
        [
            f"Ray Data, {run['actors']} actor(s)",
            f"{run['seconds']:.1f}",
            f"{run['chunks_per_s']:.1f}",
            f"{run['chunks_per_s'] / r['local']['chunks_per_s']:.2f}",
            f"{run['min_cosine']:.7f}",
        ]
        for run in r["runs"]
    ]
    header = ["path", "seconds", "chunks/s", "ratio to local", "min cosine to local"]
    return "\n".join(
        [
            f"qa bench ray: {r['chunks']} chunks, batch {r['info']['batch_size']}; "
            f"Ray start {r['ray_start_s']:.1f} s (not in the runs; actors' model loads are)",
            context_line(r),
            "",
            markdown_table(header, rows),
        ]
    )
