"""`qa bench ask`: warm `Engine.ask` latency without the reader, with it as before calibrated
confidence, and as by default, against one query encode + one FAISS search."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.eval.metrics import percentile
from qa.eval.report import markdown_table, pyplot, run_info, save_figure
from qa.eval.sets import EvalQuestion
from qa.eval.timing import Say, context_line, latency_stats, quiet, torch_threads, verdict
from qa.retrieval import followups

if TYPE_CHECKING:
    from qa.engine import ConfidenceMode

TARGET_ASK_P50_MS = 60.0
TARGET_CONFIDENCE_RATIO = 1.5  # the default's p50 at most this times the answer step's before

# The answer steps timed side by side on the same questions: name -> (QA_READER,
# Engine confidence_mode, label).
VARIANTS: dict[str, tuple[str, ConfidenceMode, str]] = {
    "off": ("off", "off", "QA_READER=off (the rules alone)"),
    "no-confidence": (
        "short",
        "off",
        "QA_READER=short, confidence off (one sentence read, as before calibrated confidence)",
    ),
    "default": ("short", "calibrated", "QA_READER=short, calibrated confidence (the default)"),
}


def bench_ask(
    index_dir: Path,
    questions: Sequence[EvalQuestion],
    n: int | None = None,
    top_k: int | None = None,
    warmup: int = 3,
    say: Say = quiet,
) -> dict[str, Any]:
    """Warm `Engine.ask` latency of each of `VARIANTS` vs one query encode + one FAISS search,
    on the same questions, in rotating order (the machine's noise falls on all alike)."""
    from qa.engine import Engine

    base = Engine(index_dir, confidence_mode="off")
    engines = {
        name: Engine(
            index_dir,
            embedder=base.embedder,
            settings=base.settings.replace(reader=reader),
            confidence_mode=mode,
        )
        for name, (reader, mode, _) in VARIANTS.items()
    }
    top_k = top_k or base.settings.retrieval.top_k
    snap = base.snapshot()
    questions = list(questions)[: n or None]
    for engine in engines.values():
        for q in questions[:warmup]:
            engine.ask(q.question, history=q.messages(), top_k=top_k)
    steps = ("floor", *VARIANTS)
    say(f"asking {len(questions)} questions (warm), floor and each variant in turn")
    ms: dict[str, list[float]] = {step: [] for step in steps}
    steps_of_ask = ("rewrite", "retrieve", "answer")
    parts: dict[str, dict[str, list[float]]] = {
        name: {part: [] for part in steps_of_ask} for name in VARIANTS
    }
    for i, q in enumerate(questions):
        query = followups.rewrite(q.question, q.messages())
        for step in steps[i % len(steps) :] + steps[: i % len(steps)]:
            t0 = time.perf_counter()
            if step == "floor":
                vector = base.embedder.embed_query(query)
                snap.dense_search(vector, top_k)
                ms[step].append((time.perf_counter() - t0) * 1e3)
            else:
                result = engines[step].ask(q.question, history=q.messages(), top_k=top_k)
                ms[step].append((time.perf_counter() - t0) * 1e3)
                for part, values in parts[step].items():
                    values.append(result.timings_ms.get(part, 0.0))
    for engine in (base, *engines.values()):
        engine.close()
    by_variant = {name: latency_stats(ms[name]) for name in VARIANTS}
    ask = by_variant["default"]
    ask_p50, before = ask["p50"], by_variant["no-confidence"]["p50"]
    ratio = round(ask_p50 / before, 3) if ask_p50 is not None and before else None
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
        "floor_ms": latency_stats(ms["floor"]),
        "by_variant_ms": by_variant,
        "default_vs_no_confidence_p50": ratio,
        "parts_p50_ms": {
            name: {k: percentile(v, 50) for k, v in p.items()} for name, p in parts.items()
        },
        # Paired per question: the time Engine.ask spends beyond its floor.
        "overhead_p50_ms": percentile(
            [a - f for a, f in zip(ms["default"], ms["floor"], strict=True)], 50
        ),
        "samples": {"floor_ms": ms["floor"]} | {f"{name}_ms": ms[name] for name in VARIANTS},
        "targets": {
            "ask_p50_ms_below": TARGET_ASK_P50_MS,
            "default_vs_no_confidence_p50_at_most": TARGET_CONFIDENCE_RATIO,
        },
        "meets": {
            "ask_p50": ask_p50 is not None and ask_p50 < TARGET_ASK_P50_MS,
            "default_vs_no_confidence": ratio is not None and ratio <= TARGET_CONFIDENCE_RATIO,
        },
    }


def format_ask(r: dict[str, Any]) -> str:
    rows = []
    for name, a in r["by_variant_ms"].items():
        target = ""
        if name == "default":
            target = f"p50 < {TARGET_ASK_P50_MS:.0f} {verdict(r['meets']['ask_p50'])}"
        rows.append(
            [f"Engine.ask, {VARIANTS[name][2]}", f"{a['p50']:.1f}", f"{a['p95']:.1f}"]
            + [f"{a['mean']:.1f}", target]
        )
    f = r["floor_ms"]
    rows.append(
        ["floor: 1 query encode + FAISS top-k", f"{f['p50']:.1f}", f"{f['p95']:.1f}"]
        + [f"{f['mean']:.1f}", ""]
    )
    rows.append(["Engine.ask (default) - floor, per question", f"{r['overhead_p50_ms']:.1f}"])
    rows[-1] += ["", "", ""]
    ratio = r["default_vs_no_confidence_p50"]
    rows.append(
        [
            "p50 ratio: default / confidence off",
            "-" if ratio is None else f"{ratio:.2f}x",
            "",
            "",
            f"<= {TARGET_CONFIDENCE_RATIO:.1f}x {verdict(r['meets']['default_vs_no_confidence'])}",
        ]
    )
    parts = [
        f"{name}: " + ", ".join(f"{k} {v:.1f}" for k, v in p.items())
        for name, p in r["parts_p50_ms"].items()
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
            "reader and the confidence): " + "; ".join(parts),
        ]
    )


def plot_ask(r: dict[str, Any], path: Path) -> Path:
    """Latency distributions (CDF) of Engine.ask and of its floor."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = {"off": "tab:olive", "no-confidence": "tab:cyan", "default": "tab:green"}
    curves = [(f"{k}_ms", f"Engine.ask, {k}", c) for k, c in colors.items()]
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
