"""What `qa eval` and `qa bench` write: definitions, tables, the report, plots and JSON files.

Files are written beside their final name and renamed into place, so a report is whole or absent.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.answering import extractive as answering
from qa.eval.summary import (
    KS,
    MAX_K,
    PIPELINE,
    RULES,
    RULES_READER_SPAN,
    SWEEP,
)
from qa.retrieval import search as retrieval

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from qa.eval.run import EvalRun

DEFINITIONS = f"""\
All figures are shares between 0 and 1 unless marked ms. *Answerable* questions have gold
answers; *unanswerable* ones (`"unanswerable": true`) have none in the corpus.

**Matching a gold answer.** Text *contains* a gold answer when, after SQuAD normalization of
both (lower case, `’` read as `'`, punctuation removed, the articles a/an/the removed, whitespace
collapsed), the gold answer occurs in the text as whole words. Punctuation is tried both removed
(as SQuAD does: "U.S." = "US") and read as a word break ("Diq’s" holds "Diq"). Any one of a
question's gold answers counts.

Retrieval (answerable questions; each retriever ranks the same index for the same query, the
question rewritten with its history exactly as `Engine.ask` does; top {MAX_K} passages once):
- **answer recall@k**: share of questions where one of the first k passages contains a gold answer.
- **gold-doc hit@k**: share of questions where one of the first k passages comes from the gold
  document.
- **MRR**: mean of 1/rank of the first passage that contains a gold answer (0 when none of the
  first {MAX_K} does).
- Retrievers: **bm25** = BM25 alone (`dense_weight=0`), **dense** = MiniLM vectors alone
  (`dense_weight=1`), **fused** = the default pipeline (`dense_weight={retrieval.DENSE_WEIGHT}`).

Answers (the **fused** row is `Engine.ask`, the function the HTTP service calls; the bm25 and
dense rows answer with the same `answering.answer` from those retrievers' top-k passages):
- **fact recall**: share of answerable questions whose answer (not an abstention; citation
  markers removed) contains a gold answer.
- **short answer rate**: share of answered answerable questions that come with a short answer.
- **short EM / F1**: SQuAD exact match and token F1 (best over the gold answers) of the short
  answer, over answerable questions that have one.

Citations:
- **verbatim**: share of all citations returned (any question) whose quote equals the cited
  document's text at `[start:end]` (`Engine.document(doc_id).text`). Must be 1.
- **support**: share of answered answerable questions where a gold answer lies inside one
  cited quote.

Abstention:
- **abstain (unanswerable)**: share of unanswerable questions where the answer abstains
  ("the sources don't say"). Higher is better.
- **wrong abstain (answerable)**: share of answerable questions where it abstains. Lower is
  better.

Calibration (extractive answers): the abstention threshold (`QA_MIN_COVERAGE`, default 0.40:
the share of the question's idf weight a supporting sentence must cover) is swept over
{SWEEP[0]}..{SWEEP[-1]} on the same passages `Engine.ask` retrieved; for each value, **abstain
(unans.)**, **answered (answerable)** = 1 - wrong abstain, and **fact recall** as above. The
default is the value that keeps answered >= 0.95 on the dev sets while abstaining most
(docs/evaluation.md); on your own questions, pick yours from this table and set `QA_MIN_COVERAGE`.

Latency: wall time of one `Engine.ask` call per question (warm: the model and the index are
loaded by one untimed question first), **p50** and **p95** over all questions, in ms.
"""


def run_info() -> dict[str, Any]:
    """Where and when a measurement was made, to keep beside its figures."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": (commit + ("+dirty" if dirty else "")) or None,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        # Other work on the machine slows every timing; keep the load beside the figures.
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, padded so it also reads well in a terminal."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *[line(r) for r in cells[1:]]])


def _label(name: str, mode: str | None = None) -> str:
    if name == PIPELINE:
        return f"fused w={retrieval.DENSE_WEIGHT} (Engine.ask, {mode or 'extractive'})"
    return name


def summary_tables(summary: dict[str, Any]) -> str:
    """The retrieval, answer and latency tables (markdown)."""
    s = summary
    retrieval_rows = [
        [
            _label(name) if name != PIPELINE else f"fused w={retrieval.DENSE_WEIGHT}",
            *[_fmt(r[f"recall@{k}"]) for k in KS],
            *[_fmt(r[f"hit@{k}"]) for k in KS],
            _fmt(r["mrr"]),
        ]
        for name, r in s["retrieval"].items()
    ]
    answer_rows = [
        [
            _label(name, s.get("mode")),
            _fmt(a["fact_recall"]),
            _fmt(a["short_answer_rate"]),
            _fmt(a["short_em"]),
            _fmt(a["short_f1"]),
            _fmt(a["verbatim"]),
            _fmt(a["support"]),
            _fmt(a["abstain_unanswerable"]),
            _fmt(a["wrong_abstain"]),
        ]
        for name, a in s["answers"].items()
    ]
    lat = s["latency_ms"]
    parts = ", ".join(f"{k} {_fmt(v, 1)}" for k, v in lat["p50_parts"].items())
    parts_md = [
        f"{s['n_questions']} questions: {s['n_answerable']} answerable, "
        f"{s['n_unanswerable']} unanswerable, {s['n_with_history']} with history. "
        f"Outcomes: {', '.join(f'{k} {v}' for k, v in sorted(s['outcomes'].items()))}.",
        "Retrieval (answerable questions)\n\n"
        + markdown_table(
            [
                "retriever",
                *[f"recall@{k}" for k in KS],
                *[f"doc hit@{k}" for k in KS],
                "MRR",
            ],
            retrieval_rows,
        ),
        "Answers, citations, abstention\n\n"
        + markdown_table(
            [
                "answers from",
                "fact recall",
                "short rate",
                "short EM",
                "short F1",
                "verbatim",
                "support",
                "abstain (unans.)",
                "wrong abstain",
            ],
            answer_rows,
        ),
        llm_lines(s),
        confidence_lines(s.get("confidence") or {}),
        calibration_table(s["calibration"], s.get("min_coverage", answering.MIN_COVERAGE)),
        f"Latency of Engine.ask (ms, warm): p50 {_fmt(lat['p50'], 1)}, "
        f"p95 {_fmt(lat['p95'], 1)}, mean {_fmt(lat['mean'], 1)}, max {_fmt(lat['max'], 1)}"
        f" (p50 of parts: {parts})",
    ]
    return "\n\n".join(part for part in parts_md if part)


def confidence_lines(c: dict[str, Any]) -> str:
    """The calibrated confidence: each tier's size and precision, the confident answers'
    coverage, the short answers shown, and calibration (plot: confidence.png)."""
    if not c:
        return ""
    rows = [
        [t.replace("_", " "), str(f["n"]), _fmt(f["right"]) if t != "not_in_sources" else "-"]
        for t, f in c["tiers"].items()
    ]
    return (
        "Confidence (tiers by the calibrated probability that the answer is right)\n\n"
        + markdown_table(["tier", "questions", "right"], rows)
        + f"\n\nConfident answers right {_fmt(c['confident_precision'])}, covering "
        f"{_fmt(c['confident_coverage'])} of the answerable questions, confident on "
        f"{_fmt(c['confident_on_unanswerable'])} of the unanswerable; {c['short_shown']} short "
        f"answers shown, right {_fmt(c['short_shown_right'])}. Over the {c['rated']} rated "
        f"answers: ECE {_fmt(c['ece'])}, AUC {_fmt(c['auc'])} (confidence.png)."
    )


def plot_confidence(summary: dict[str, Any], path: Path) -> Path | None:
    """Reliability diagram and risk-coverage curve of the set's rated answers."""
    c = summary.get("confidence") or {}
    if not c.get("rated"):
        return None
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    rel = c["reliability"]
    left.plot([0, 1], [0, 1], color="gray", ls=":", label="perfectly calibrated")
    left.plot([r["predicted"] for r in rel], [r["right"] for r in rel], "o-",
              label=f"answers (ECE {_fmt(c['ece'])})")  # fmt: skip
    left.set(xlabel="confidence", ylabel="share right", xlim=(0, 1), ylim=(0, 1.02))
    left.set_title("Reliability diagram")
    curve = c["risk_coverage"]
    right.plot([r["coverage"] for r in curve], [r["precision"] for r in curve], "-",
               label=f"most confident first (AUC {_fmt(c['auc'])})")  # fmt: skip
    right.set(xlabel="coverage (share of rated answers kept)", ylabel="precision", ylim=(0, 1.02))
    right.set_title("Risk-coverage")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return save_figure(fig, path)


def llm_lines(summary: dict[str, Any]) -> str:
    """LLM mode: how often the model was asked, and what verification removed and why."""
    f = summary.get("llm")
    if not f:
        return ""
    why = ", ".join(f"{n} for {reason}" for reason, n in f["removed_because"].items())
    return (
        f"LLM mode: the model was asked for {f['model_asked']} of {f['questions']} questions "
        f"(the others failed the extractive support check first) and wrote "
        f"{f['generated_sentences']} sentences; verification removed {f['removed_sentences']} "
        f"({_fmt(f['removed_rate'])}) as unsupported{': ' + why if why else ''}; "
        f"{_fmt(summary['answers_with_removals'])} of answers had one removed; "
        f"{f['fallbacks']} answers fell back to the extractive one (the model failed)."
    )


def calibration_table(
    points: Sequence[dict[str, Any]],
    default: float,
    name: str = "min_coverage",
    title: str = "Abstention threshold (extractive, rules; same passages, `min_coverage` swept)",
) -> str:
    """The threshold sweep as markdown, the default marked."""
    if not points:
        return ""
    rows = [
        [
            f"**{p[name]:.2f}** (default)" if abs(p[name] - default) < 1e-9 else f"{p[name]:.2f}",
            _fmt(p["abstain_unanswerable"]),
            _fmt(p["answered_answerable"]),
            _fmt(p["fact_recall"]),
        ]
        for p in points
    ]
    return f"{title}\n\n" + markdown_table(
        [name, "abstain (unans.)", "answered (answerable)", "fact recall"], rows
    )


def markdown_report(run: EvalRun, max_failures: int = 40) -> str:
    """The full report: setup, tables, failures to read, definitions."""
    i = run.info
    head = (
        f"# Eval: {run.set_name}\n\n"
        f"- index `{i['index_dir']}` ({i['index_version']}, {i['n_documents']} documents, "
        f"{i['n_chunks']} chunks), model `{i['model']}`, top_k {run.top_k}\n"
        f"- indexing: {i['index_report']}\n"
        f"- {i['created_at']}, commit {i['commit']}, python {i['python']}, {i['machine']}, "
        f"load average {i['load_avg_1_5_15']}\n"
    )
    failures = ["## Failures (default pipeline)\n"]
    for kind, title in (
        ("MISSED", "Answered, but without a gold answer"),
        ("WRONG-ABSTAIN", "Abstained on an answerable question"),
        ("FALSE-ANSWER", "Answered an unanswerable question"),
    ):
        bad = [r for r in run.records if r["outcome"] == kind]
        failures.append(f"### {title} ({len(bad)})\n")
        for r in bad[:max_failures]:
            gold = " | ".join(r["gold_answers"]) or "(none: unanswerable)"
            rank = r["retrieval"][PIPELINE]["answer_rank"]
            answer = r["answer"] if len(r["answer"]) < 300 else r["answer"][:300] + "…"
            failures.append(
                f"- `{r['id']}` {r['question']}"
                + (f" _(searched: {r['query']})_" if r["query"] != r["question"] else "")
                + f"\n  - gold: {gold}; gold passage rank (fused): {rank or '>10'}"
                + (f"\n  - short answer: {r['short_answer']}" if r["short_answer"] else "")
                + f"\n  - answer: {answer}"
            )
        if len(bad) > max_failures:
            failures.append(f"- … and {len(bad) - max_failures} more in results.jsonl")
        failures.append("")
    return "\n".join(
        [
            head,
            summary_tables(run.summary),
            "",
            "![recall@k and answer metrics](report.png)",
            "",
            *failures,
            "## Definitions\n",
            DEFINITIONS,
        ]
    )


def plot(run: EvalRun, path: Path) -> None:
    """Recall@k curves of the retrievers, and bars of the answer metrics."""
    plt = pyplot()
    colors = {
        "bm25": "tab:orange",
        "dense": "tab:blue",
        "fused": "tab:green",
        RULES: "tab:olive",
        RULES_READER_SPAN: "tab:cyan",
    }
    points = run.summary.get("calibration") or []
    if points:
        fig, (left, right, cal) = plt.subplots(1, 3, figsize=(20, 5.2), width_ratios=[1, 1.5, 1])
        plot_calibration(cal, points, run.summary.get("min_coverage", answering.MIN_COVERAGE))
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.2), width_ratios=[1, 1.5])
    ks = list(range(1, MAX_K + 1))
    for name, r in run.summary["retrieval"].items():
        left.plot(ks, r["recall_curve"], "o-", color=colors[name], label=f"{name}: answer recall")
        left.plot(ks, r["hit_curve"], "--", color=colors[name], alpha=0.6, label=f"{name}: doc hit")
    left.set(xlabel="k (passages)", ylabel="share of answerable questions", xticks=ks)
    left.set_title("Retrieval: answer recall@k (solid), gold-doc hit@k (dashed)")
    lowest = [
        v for r in run.summary["retrieval"].values() for v in r["recall_curve"] if v is not None
    ]
    left.set_ylim(max(0.0, min(lowest, default=0.0) - 0.05), 1.01)  # none: no answerable question
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")

    metrics = [
        ("fact_recall", "fact recall"),
        ("support", "support"),
        ("verbatim", "verbatim"),
        ("short_em", "short EM"),
        ("short_f1", "short F1"),
        ("abstain_unanswerable", "abstain\n(unans.) ↑"),
        ("wrong_abstain", "wrong abstain\n(answerable) ↓"),
    ]
    answers = run.summary["answers"]
    width = 0.8 / len(answers)
    x = np.arange(len(metrics))
    for j, (name, a) in enumerate(answers.items()):
        values = [a[key] if a[key] is not None else 0.0 for key, _ in metrics]
        offset = (j - (len(answers) - 1) / 2) * width
        label = _label(name, run.summary.get("mode"))
        bars = right.bar(x + offset, values, width, color=colors.get(name, "tab:gray"), label=label)
        right.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    right.set_xticks(x, [label for _, label in metrics], fontsize=9)
    right.set_ylim(0, 1.12)
    right.set_title("Answers, citations and abstention, by retriever")
    right.legend(fontsize=8, loc="upper right", ncols=3)
    right.grid(axis="y", alpha=0.3)
    s = run.summary
    fig.suptitle(
        f"qa eval {run.set_name}: {s['n_answerable']} answerable + {s['n_unanswerable']} "
        f"unanswerable questions, top_k {run.top_k}; Engine.ask p50 "
        f"{_fmt(s['latency_ms']['p50'], 0)} ms, p95 {_fmt(s['latency_ms']['p95'], 0)} ms"
    )
    fig.tight_layout()
    save_figure(fig, path)


def plot_calibration(
    ax: Axes,
    points: Sequence[dict[str, Any]],
    default: float,
    name: str = "min_coverage",
    meaning: str = "share of the question a sentence must cover",
    title: str = "Rules' abstention threshold: calibration sweep",
) -> None:
    """Abstention on unanswerables against answers kept, as the threshold moves."""
    x = [p[name] for p in points]
    for key, label, style in (
        ("abstain_unanswerable", "abstain on unanswerable ↑", "o-"),
        ("answered_answerable", "answered answerable ↑", "s-"),
        ("fact_recall", "fact recall", "^--"),
    ):
        ax.plot(x, [p[key] if p[key] is not None else np.nan for p in points], style, label=label)
    ax.axvline(default, color="gray", ls=":", label=f"threshold in use ({default:.2f})")
    ax.set(xlabel=f"{name} ({meaning})", ylim=(0, 1.02))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")


def write_outputs(run: EvalRun, out_dir: Path) -> dict[str, Path]:
    """results.jsonl, summary.json, report.md, report.png and confidence.png in `out_dir`."""
    out_dir = Path(out_dir)
    paths = {
        "results": out_dir / "results.jsonl",
        "summary": out_dir / "summary.json",
        "report": out_dir / "report.md",
        "plot": out_dir / "report.png",
    }
    write_records(run.records, run.info, run.summary, paths)
    write_text(paths["report"], markdown_report(run) + "\n")
    plot(run, paths["plot"])
    if confidence_plot := plot_confidence(run.summary, out_dir / "confidence.png"):
        paths["confidence_plot"] = confidence_plot
    return paths


def write_records(
    records: Sequence[dict[str, Any]],
    info: dict[str, Any],
    summary: dict[str, Any],
    paths: dict[str, Path],
) -> None:
    """A run's records, one JSON line each, to `paths["results"]`, and its info and figures to
    `paths["summary"]` (what `qa eval` writes for every kind of set)."""
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_text(paths["results"], lines)
    write_json({"info": info, **summary}, paths["summary"])


def write_text(path: Path, text: str) -> Path:
    """Write a file whole or not at all: beside it first, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def save_figure(fig: Figure, path: Path) -> Path:
    """Save a matplotlib figure (PNG) whole or not at all, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fig.savefig(partial, dpi=110, format="png")
    os.replace(partial, path)
    pyplot().close(fig)
    return path


def pyplot() -> ModuleType:
    """matplotlib's pyplot, drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
