"""Each encoder runtime (QA_EMBED_BACKEND) beside the bare torch fp32 model, in one run.

Batches: the same texts, batch size and order of magnitude of work; runtimes and the floor
alternate (floor, each runtime, floor, ...) and each is compared with the median floor. Single
questions: each question encoded once by every runtime and by the floor, interleaved, so load
from elsewhere falls on all of them alike. Agreement: cosine of each runtime's vectors with the
floor's, on the same texts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from qa.encoders.embedding import Embedder, has_bf16, make_embedder
from qa.eval.report import markdown_table
from qa.eval.timing import Say, encoder_model, quiet

RUNTIMES = ("torch", "onnx", "onnx-int8", "torch-bf16")


def default_runtimes() -> list[str]:
    """Every runtime, bf16 only where the CPU computes it (emulated bf16 takes minutes)."""
    return [r for r in RUNTIMES if r != "torch-bf16" or has_bf16()]


def bench_runtimes(
    texts: Sequence[str],
    questions: Sequence[str],
    runtimes: Sequence[str],
    batch_size: int = 32,
    rounds: int = 1,
    say: Say = quiet,
) -> dict[str, Any]:
    """Chunks/s, query p50 and agreement with torch of each runtime, beside the bare model."""
    model = encoder_model()
    embedders: dict[str, Embedder] = {name: make_embedder(name) for name in runtimes}
    warm = list(texts[:batch_size])
    model.encode(warm, batch_size=batch_size)
    for name, e in embedders.items():
        say(f"warming up {name} (exported first if not in the cache)")
        e.embed(warm, batch_size)

    def floor() -> tuple[float, np.ndarray]:
        t0 = time.perf_counter()
        v = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True)
        return time.perf_counter() - t0, np.asarray(v, dtype=np.float32)

    floors: list[float] = []
    runs: dict[str, list[float]] = {name: [] for name in embedders}
    cosines: dict[str, np.ndarray] = {}
    reference = None
    for r in range(rounds):
        say(f"round {r + 1}/{rounds}: floor, then {', '.join(embedders)}, {len(texts)} texts")
        seconds, reference = floor()
        floors.append(seconds)
        for name, e in embedders.items():
            t0 = time.perf_counter()
            vectors = e.embed(texts, batch_size)
            runs[name].append(time.perf_counter() - t0)
            cosines[name] = np.sum(vectors * reference, axis=1)
    floors.append(floor()[0])
    floor_s = statistics.median(floors)

    say(f"single questions: {len(questions)}, each by the floor and every runtime")
    query_ms: dict[str, list[float]] = {"floor": [], **{name: [] for name in embedders}}
    for i, q in enumerate(questions):
        order = ["floor", *embedders]
        for name in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            if name == "floor":
                model.encode([q], normalize_embeddings=True)
            else:
                embedders[name].embed_query(q)
            query_ms[name].append((time.perf_counter() - t0) * 1e3)
    floor_q = statistics.median(query_ms["floor"])
    result: dict[str, Any] = {
        "texts": len(texts),
        "questions": len(questions),
        "batch_size": batch_size,
        "floor": {
            "runs_s": floors,
            "chunks_per_s": len(texts) / floor_s,
            "query_p50_ms": floor_q,
        },
        "runtimes": {},
    }
    for name in embedders:
        best = min(runs[name])
        q50 = statistics.median(query_ms[name])
        result["runtimes"][name] = {
            "runs_s": runs[name],
            "chunks_per_s": len(texts) / best,
            "ratio_to_floor": floor_s / best,
            "cosine_mean": float(cosines[name].mean()),
            "cosine_min": float(cosines[name].min()),
            "query_p50_ms": q50,
            "query_ratio_to_floor": q50 / floor_q,
        }
    return result


def format_runtimes(r: dict[str, Any]) -> str:
    f = r["floor"]
    rows = [["bare torch fp32 (floor)", f"{f['chunks_per_s']:.1f}", "1.00", "", "", ""]]
    rows[0][4:] = [f"{f['query_p50_ms']:.1f}", "1.00"]
    for name, x in r["runtimes"].items():
        rows.append(
            [
                name,
                f"{x['chunks_per_s']:.1f}",
                f"{x['ratio_to_floor']:.2f}",
                f"{x['cosine_mean']:.5f} / {x['cosine_min']:.5f}",
                f"{x['query_p50_ms']:.1f}",
                f"{x['query_ratio_to_floor']:.2f}",
            ]
        )
    head = [
        "runtime",
        "chunks/s",
        "x floor",
        "cosine to floor mean / min",
        "query p50 ms",
        "x floor",
    ]
    title = (
        f"runtimes: {r['texts']} texts in batches of {r['batch_size']}, "
        f"{r['questions']} single questions"
    )
    return "\n".join([title, "", markdown_table(head, rows)])
