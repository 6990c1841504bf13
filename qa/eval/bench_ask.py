"""`qa bench ask`: warm `Engine.ask` latency against one query encode + one FAISS search."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa import chat
from qa.eval.metrics import percentile
from qa.eval.report import markdown_table, pyplot, run_info, save_figure
from qa.eval.sets import EvalQuestion
from qa.eval.timing import Say, context_line, latency_stats, quiet, torch_threads, verdict

TARGET_ASK_P50_MS = 60.0


def bench_ask(
    index_dir: Path,
    questions: Sequence[EvalQuestion],
    n: int | None = None,
    top_k: int | None = None,
    warmup: int = 3,
    say: Say = quiet,
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
    ask, fl = latency_stats(ask_ms), latency_stats(floor_ms)
    return {
        "bench": "ask",
        "info": run_info()
        | {
            "index_dir": str(index_dir),
            "index_version": snap.version,
            "top_k": top_k,
            "torch_threads": torch_threads(),
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
            f"p50 < {TARGET_ASK_P50_MS:.0f} {verdict(r['meets']['ask_p50'])}",
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
            context_line(r),
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
    plt = pyplot()
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
    return save_figure(fig, path)
