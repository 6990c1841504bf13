"""`qa bench ann`: approximate FAISS indexes against exact search on synthetic chunk vectors.

Vectors only (no text, no BM25): the set's real chunk vectors, grown to `size` by draws from a
mixture fitted to them (`qa/eval/synthetic.py`). Queries are the set's real question vectors and
held-out draws from the mixture, never indexed. Each index answers one query at a time, as
`IndexView.dense_search` does; recall@10 is against exact inner-product search.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa.eval import synthetic
from qa.eval.report import markdown_table, run_info
from qa.eval.sets import build_index, default_index_dir, load_questions, load_set
from qa.eval.timing import Say, context_line, latency_stats, quiet
from qa.store import folder as store

K = 10
# (label, kind, build parameters, search parameter, values swept)
CONFIGS: tuple[tuple[str, str, dict[str, int], str, tuple[int, ...]], ...] = (
    ("HNSW M32 efC200", "hnsw", {"M": 32, "efConstruction": 200}, "efSearch", (128, 256, 512)),
    ("HNSW M48 efC400", "hnsw", {"M": 48, "efConstruction": 400}, "efSearch", (128, 256, 512)),
    ("IVF-Flat", "ivf", {}, "nprobe", (16, 32, 64, 128, 256)),
)


def _build(kind: str, params: dict[str, int], x: np.ndarray) -> Any:
    import faiss

    dim = x.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efConstruction"]
        index.add(x)
        return index
    return store.build_vector_index("ivf", x, dim)  # the lists the folder store writes


def _search_params(kind: str, value: int) -> Any:
    import faiss

    if kind == "hnsw":
        return faiss.SearchParametersHNSW(efSearch=value)
    return faiss.SearchParametersIVF(nprobe=value)


def bench_ann(
    set_dir: Path,
    size: int,
    n_probes: int = 200,
    say: Say = quiet,
    configs: Sequence[tuple[str, str, dict[str, int], str, tuple[int, ...]]] = CONFIGS,
    seed: int = 0,
) -> dict[str, Any]:
    """Build time, size, single-query latency and recall@10 of each configuration."""
    import faiss

    from qa.encoders.embedding import default_embedder

    eval_set = load_set(set_dir)
    embedder = default_embedder()
    base_dir = default_index_dir(set_dir)
    build_index(eval_set, base_dir, embedder)
    base = store.open_snapshot(base_dir)
    real = base.all_vectors().astype(np.float32)
    base.close()
    rng = np.random.default_rng(seed)
    mixture = synthetic.fit_mixture(real, seed)
    grown = [real[:size]]
    if size > len(real):
        components = np.resize(mixture.labels, size - len(real))
        grown.append(synthetic.draw(mixture, components, rng))
    x = np.ascontiguousarray(np.vstack(grown), dtype=np.float32)
    questions = [q.question for q in load_questions(eval_set)]
    queries = {
        "questions": np.vstack([embedder.embed_query(q) for q in questions]).astype(np.float32),
        "held-out draws": synthetic.draw_any(mixture, n_probes, np.random.default_rng(seed + 1)),
    }
    say(f"{len(x)} vectors ({len(real)} real); exact top-{K} of {sum(map(len, queries.values()))}")
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    exact = {name: flat.search(q, K)[1] for name, q in queries.items()}
    flat_ms = []
    for q in queries["questions"]:
        t0 = time.perf_counter()
        flat.search(q.reshape(1, -1), K)
        flat_ms.append((time.perf_counter() - t0) * 1e3)
    del flat
    rows: list[dict[str, Any]] = [
        {
            "index": "Flat (exact)",
            "param": "-",
            "build_s": 0.0,
            "mb": x.nbytes / 1e6,
            "search_ms": latency_stats(flat_ms),
            "recall": {name: 1.0 for name in queries},
        }
    ]
    for label, kind, params, knob, values in configs:
        say(f"building {label}")
        t0 = time.perf_counter()
        index = _build(kind, params, x)
        build_s = time.perf_counter() - t0
        mb = len(faiss.serialize_index(index)) / 1e6
        extra = f" nlist {index.nlist}" if kind == "ivf" else ""
        for value in values:
            search = _search_params(kind, value)
            recall, ms = {}, []
            for name, q in queries.items():
                hits = 0
                for i, vector in enumerate(q):
                    t0 = time.perf_counter()
                    _, ids = index.search(vector.reshape(1, -1), K, params=search)
                    if name == "questions":
                        ms.append((time.perf_counter() - t0) * 1e3)
                    hits += len(set(ids[0].tolist()) & set(exact[name][i].tolist()))
                recall[name] = hits / (K * len(q))
            rows.append(
                {
                    "index": label + extra,
                    "param": f"{knob} {value}",
                    "build_s": build_s,
                    "mb": mb,
                    "search_ms": latency_stats(ms),
                    "recall": recall,
                }
            )
            say(f"  {knob} {value}: recall {recall}, p50 {rows[-1]['search_ms']['p50']:.2f} ms")
        del index
    stats = {
        "real": synthetic.neighbour_stats(real),
        "synthetic": synthetic.neighbour_stats(synthetic.draw(mixture, mixture.labels, rng)),
    }
    return {
        "bench": "ann",
        "info": run_info() | {"set": str(set_dir), "size": len(x), "real": len(real)},
        "mixture": mixture.describe(),
        "neighbours": stats,
        "queries": {name: len(q) for name, q in queries.items()},
        "rows": rows,
    }


def format_ann(r: dict[str, Any]) -> str:
    names = list(r["queries"])
    header = ["index", "search", "build s", "MB", "p50 ms", "p95 ms"] + [
        f"recall@{K} {n}" for n in names
    ]
    rows = [
        [
            row["index"],
            row["param"],
            f"{row['build_s']:.1f}",
            f"{row['mb']:.0f}",
            f"{row['search_ms']['p50']:.2f}",
            f"{row['search_ms']['p95']:.2f}",
        ]
        + [f"{row['recall'][n]:.3f}" for n in names]
        for row in r["rows"]
    ]
    n = r["neighbours"]
    return "\n".join(
        [
            f"qa bench ann: {r['info']['size']} vectors ({r['info']['real']} real chunk vectors "
            f"of {r['info']['set']}, the rest synthetic: {r['mixture']})",
            context_line(r),
            "",
            markdown_table(header, rows),
            "",
            f"Queries: {r['queries']['questions']} real question vectors and "
            f"{r['queries']['held-out draws']} held-out draws from the mixture (not indexed), one "
            f"at a time; latency over the questions. recall@{K}: share of the exact top-{K} found. "
            "Neighbourhoods, real vs synthetic at the real count (median cosine to the nearest / "
            f"10th nearest): {n['real']['nn1_cos_p50']:.3f} / {n['real']['nn10_cos_p50']:.3f} vs "
            f"{n['synthetic']['nn1_cos_p50']:.3f} / {n['synthetic']['nn10_cos_p50']:.3f}.",
        ]
    )
