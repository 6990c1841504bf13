"""`qa bench ask`: warm `Engine.ask` latency, with each use of the reader, against one query
encode + one FAISS search."""

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


# Each use of the reader, timed on the same questions: QA_READER's values, and `short` with
# the passages re-ranked by the reader (QA_RERANK).
READER_USES = {
    "off": {"reader": "off"},
    "short": {"reader": "short"},
    "full": {"reader": "full"},
    "short+rerank": {"reader": "short", "rerank": True},
}


def use_label(use: str) -> str:
    """The settings of a use: "QA_READER=short QA_RERANK=true"."""
    return "QA_READER=" + use.replace("+rerank", " QA_RERANK=true")


def bench_ask(
    index_dir: Path,
    questions: Sequence[EvalQuestion],
    n: int | None = None,
    top_k: int | None = None,
    warmup: int = 3,
    say: Say = quiet,
) -> dict[str, Any]:
    """Warm `Engine.ask` latency for each `QA_READER` use vs one query encode + one FAISS
    search, on the same questions, in rotating order (the machine's noise falls on all alike)."""
    from qa.engine import Engine

    base = Engine(index_dir)
    engines = {
        use: Engine(
            index_dir,
            embedder=base.embedder,
            settings=base.settings.model_copy(update={"rerank": False} | settings),
        )
        for use, settings in READER_USES.items()
    }
    default = base.settings.reader + ("+rerank" if base.settings.rerank else "")
    default = default if default in READER_USES else base.settings.reader
    top_k = top_k or base.settings.top_k
    snap = base.snapshot()
    questions = list(questions)[: n or None]
    for engine in engines.values():
        for q in questions[:warmup]:
            engine.ask(q.question, history=q.messages(), top_k=top_k)
    steps = ("floor", *READER_USES)
    say(f"asking {len(questions)} questions (warm), floor and each QA_READER use in turn")
    ms: dict[str, list[float]] = {step: [] for step in steps}
    steps_of_ask = ("rewrite", "retrieve", "rerank", "answer")
    parts = {use: {part: [] for part in steps_of_ask} for use in READER_USES}
    for i, q in enumerate(questions):
        query = chat.rewrite(q.question, q.messages())
        for step in steps[i % len(steps) :] + steps[: i % len(steps)]:
            t0 = time.perf_counter()
            if step == "floor":
                vector = base.embedder.embed_query(query)
                snap.vectors.search(vector.reshape(1, -1), top_k)
                ms[step].append((time.perf_counter() - t0) * 1e3)
            else:
                result = engines[step].ask(q.question, history=q.messages(), top_k=top_k)
                ms[step].append((time.perf_counter() - t0) * 1e3)
                for part, values in parts[step].items():
                    values.append(result.timings_ms.get(part, 0.0))
    for engine in (base, *engines.values()):
        engine.close()
    ask = latency_stats(ms[default])
    return {
        "bench": "ask",
        "info": run_info()
        | {
            "index_dir": str(index_dir),
            "index_version": snap.version,
            "top_k": top_k,
            "torch_threads": torch_threads(),
            "reader_default": default,
        },
        "questions": len(questions),
        "chunks": snap.n_chunks,
        "ask_ms": ask,
        "floor_ms": latency_stats(ms["floor"]),
        "by_reader_ms": {use: latency_stats(ms[use]) for use in READER_USES},
        "parts_p50_ms": {
            use: {k: percentile(v, 50) for k, v in p.items()} for use, p in parts.items()
        },
        # Paired per question: the time Engine.ask spends beyond its floor.
        "overhead_p50_ms": percentile(
            [a - f for a, f in zip(ms[default], ms["floor"], strict=True)], 50
        ),
        "samples": {"floor_ms": ms["floor"]} | {f"{use}_ms": ms[use] for use in READER_USES},
        "targets": {"ask_p50_ms_below": TARGET_ASK_P50_MS},
        "meets": {"ask_p50": ask["p50"] < TARGET_ASK_P50_MS},
    }


def format_ask(r: dict[str, Any]) -> str:
    default = r["info"]["reader_default"]
    rows = []
    for use, a in r["by_reader_ms"].items():
        target = f"p50 < {TARGET_ASK_P50_MS:.0f} {verdict(r['meets']['ask_p50'])}"
        rows.append(
            [
                f"Engine.ask, {use_label(use)}"
                + (" (this run's setting)" if use == default else ""),
                f"{a['p50']:.1f}",
                f"{a['p95']:.1f}",
                f"{a['mean']:.1f}",
                target if use == default else "",
            ]
        )
    f = r["floor_ms"]
    rows.append(
        [
            "floor: 1 query encode + FAISS top-k",
            f"{f['p50']:.1f}",
            f"{f['p95']:.1f}",
            f"{f['mean']:.1f}",
            "",
        ]
    )
    rows.append(
        [f"Engine.ask ({default}) - floor, per question", f"{r['overhead_p50_ms']:.1f}", "", "", ""]
    )
    parts = [
        f"{use}: " + ", ".join(f"{k} {v:.1f}" for k, v in p.items())
        for use, p in r["parts_p50_ms"].items()
    ]
    return "\n".join(
        [
            f"qa bench ask: {r['info']['index_dir']} ({r['chunks']} chunks), "
            f"{r['questions']} questions, top_k {r['info']['top_k']}, warm, extractive",
            context_line(r),
            "",
            markdown_table(["ms per question", "p50", "p95", "mean", "target"], rows),
            "",
            "Engine.ask parts, p50 ms (retrieve includes the query encode; answer includes the "
            "reader): " + "; ".join(parts),
        ]
    )


def plot_ask(r: dict[str, Any], path: Path) -> Path:
    """Latency distributions (CDF) of Engine.ask and of its floor."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = {
        "off": "tab:olive",
        "short": "tab:green",
        "full": "tab:purple",
        "short+rerank": "tab:orange",
    }
    curves = [(f"{use}_ms", f"Engine.ask, {use_label(use)}", c) for use, c in colors.items()]
    for key, label, color in (*curves, ("floor_ms", "floor: query encode + FAISS", "tab:gray")):
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
