"""Figures over a whole set from per-question records, and the thresholds `qa eval` gates on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qa.eval.metrics import (
    auc,
    ece,
    mean,
    mean_reciprocal_rank,
    percentile,
    recall_at_k,
    reliability,
    risk_coverage,
    short_right,
)
from qa.retrieval import search as retrieval

KS = (1, 5, 10)  # recall@k and hit@k reported; the curve goes 1..MAX_K
MAX_K = 10
RETRIEVERS = {"bm25": 0.0, "dense": 1.0, "fused": retrieval.DENSE_WEIGHT}  # name -> dense_weight
PIPELINE = "fused"  # the retriever Engine.ask uses; its answer row comes from Engine.ask itself
SWEEP = tuple(round(0.2 + 0.05 * i, 2) for i in range(11))  # min_coverage values calibrated
EXTRACTIVE = "fused extractive"  # in LLM mode: the extractive answer from the same passages
RULES = "fused, rules only"  # with the reader on: the word-overlap rules alone, same passages
# with the reader on: the rules' answer with the reader's short answer, no confidence (as
# Engine(confidence_mode="off") answers), same passages
RULES_READER_SPAN = "fused, rules + reader's short answer"
RESCUED = "llm, extractive when all removed"  # in LLM mode: as with on_all_removed="extractive"


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate figures over per-question records (see DEFINITIONS)."""
    answerable = [r for r in records if not r["unanswerable"]]
    unanswerable = [r for r in records if r["unanswerable"]]
    retrieval_summary = {}
    for name in RETRIEVERS:
        answer_ranks = [r["retrieval"][name]["answer_rank"] for r in answerable]
        doc_ranks = [r["retrieval"][name]["doc_rank"] for r in answerable]
        retrieval_summary[name] = {
            **{f"recall@{k}": recall_at_k(answer_ranks, k) for k in KS},
            **{f"hit@{k}": recall_at_k(doc_ranks, k) for k in KS},
            "mrr": mean_reciprocal_rank(answer_ranks),
            "recall_curve": [recall_at_k(answer_ranks, k) for k in range(1, MAX_K + 1)],
            "hit_curve": [recall_at_k(doc_ranks, k) for k in range(1, MAX_K + 1)],
        }
    answers_summary = {}
    names = [n for n in RETRIEVERS if n != PIPELINE]
    llm = any("llm" in r for r in records)
    if llm:
        names.append(EXTRACTIVE)
    present = records[0]["answers_by_retriever"] if records else {}
    names += [n for n in (RULES, RULES_READER_SPAN) if n in present]
    for name in [*names, PIPELINE, *([RESCUED] if llm else [])]:
        if name == PIPELINE:
            view = list(records)
            verbatim = [c["verbatim"] for r in records for c in r["citations"]]
        else:
            view = [{**r, **r["answers_by_retriever"][name]} for r in records]
            verbatim = [v for r in view for v in r["verbatim"]]
        answers_summary[name] = _answer_figures(view, verbatim)
    latencies = [r["latency_ms"] for r in records]
    parts = {
        part: percentile([r["timings_ms"].get(part, 0.0) for r in records], 50)
        for part in ("rewrite", "retrieve", "answer")
    }
    return {
        "calibration": calibration(records),
        "n_questions": len(records),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "n_with_history": sum(bool(r["history"]) for r in records),
        "outcomes": dict(Counter(r["outcome"] for r in records)),
        "mode": ("llm" if llm else records[0]["mode"]) if records else None,
        "removed_sentences": sum(r["removed_sentences"] for r in records),
        "answers_with_removals": mean([r["removed_sentences"] > 0 for r in records]),
        "retrieval": retrieval_summary,
        "answers": answers_summary,
        "confidence": confidence_figures(records),
        **({"llm": llm_figures(records)} if llm else {}),
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "mean": mean(latencies),
            "max": max(latencies, default=None),
            "p50_parts": parts,
        },
    }


def confidence_figures(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How honest the calibrated confidence is over the set: each tier's precision, the share
    of answerable questions answered confidently, confident answers on unanswerable ones, the
    short answers shown (only confident ones have one) and how often they are right, and over
    the rated answers the expected calibration error, AUC, reliability and risk-coverage."""
    if not records or "tier" not in records[0]:
        return {}
    shown = [r for r in records if is_confident(r) and r["short_answer"]]
    rated = [r for r in records if r.get("confidence") is not None]
    p = np.array([r["confidence"] for r in rated], dtype=float)
    y = np.array([r["right"] for r in rated], dtype=int)
    return tier_figures(records) | {
        "short_shown": len(shown),
        "short_shown_right": mean([short_right(r) for r in shown]),
        "rated": len(rated),
        "ece": ece(p, y) if len(rated) else None,
        "auc": auc(p, y) if len(rated) else None,
        "reliability": reliability(p, y) if len(rated) else [],
        "risk_coverage": risk_coverage(p, y) if len(rated) else [],
    }


def is_confident(r: dict[str, Any]) -> bool:
    """Rated, and in the answer tier (an LLM's answer has no calibrated confidence)."""
    return r["tier"] == "answer" and not r["abstained"] and r["confidence"] is not None


def tier_figures(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each tier's size and share right, how many answerable questions were answered
    confidently, and how many unanswerable ones (records: `tier`, `right`, `abstained`,
    `unanswerable`, `confidence`; `qa eval`'s, and `qa train calibrator`'s out of fold)."""
    answerable = [r for r in records if not r["unanswerable"]]
    unanswerable = [r for r in records if r["unanswerable"]]
    return {
        "tiers": {
            t: {
                "n": sum(r["tier"] == t for r in records),
                "right": mean([r["right"] for r in records if r["tier"] == t]),
            }
            for t in ("answer", "best_guess", "not_in_sources")
        },
        "confident_precision": mean([r["right"] for r in records if is_confident(r)]),
        "confident_coverage": mean([is_confident(r) for r in answerable]),
        "confident_on_unanswerable": mean([is_confident(r) for r in unanswerable]),
    }


def llm_figures(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the model did over the set: asked, sentences generated and removed (and why)."""
    runs = [r["llm"] for r in records]
    generated = sum(x["generated"] for x in runs)
    removed = sum(r["removed_sentences"] for r in records)
    return {
        "questions": len(runs),
        "model_asked": sum(x["asked"] for x in runs),
        "generated_sentences": generated,
        "removed_sentences": removed,
        "removed_rate": removed / generated if generated else None,
        "fallbacks": sum(x["fallback"] for x in runs),
        "removed_because": dict(Counter(why for x in runs for why in x["reasons"])),
    }


def calibration(
    records: Sequence[dict[str, Any]], field: str = "calibration", name: str = "min_coverage"
) -> list[dict[str, Any]]:
    """Abstention and fact recall at each swept threshold (empty for LLM runs): the rules'
    `min_coverage`."""
    if not records or field not in records[0]:
        return []
    answerable = [r for r in records if not r["unanswerable"]]
    unanswerable = [r for r in records if r["unanswerable"]]
    points = []
    for key in records[0][field]:
        points.append(
            {
                name: float(key),
                "abstain_unanswerable": mean([r[field][key]["abstained"] for r in unanswerable]),
                "answered_answerable": mean([not r[field][key]["abstained"] for r in answerable]),
                "fact_recall": mean([r[field][key]["fact_hit"] for r in answerable]),
            }
        )
    return points


def _answer_figures(view: Sequence[dict[str, Any]], verbatim: Sequence[bool]) -> dict[str, Any]:
    answerable = [r for r in view if not r["unanswerable"]]
    answered = [r for r in answerable if not r["abstained"]]
    with_short = [r for r in answered if r["short_answer"]]
    return {
        "fact_recall": mean([r["fact_hit"] for r in answerable]),
        "short_answer_rate": mean([bool(r["short_answer"]) for r in answered]),
        "short_em": mean([r["em"] for r in with_short]),
        "short_f1": mean([r["f1"] for r in with_short]),
        "verbatim": mean(verbatim),
        "n_citations": len(verbatim),
        "support": mean([r["supported"] for r in answered]),
        "abstain_unanswerable": mean([r["abstained"] for r in view if r["unanswerable"]]),
        "wrong_abstain": mean([r["abstained"] for r in answerable]),
    }


# ---------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Threshold:
    option: str  # the CLI option that sets it
    label: str
    path: tuple[str, ...]  # where the figure sits in the summary
    value: float
    at_least: bool = True


THRESHOLDS = {  # keyword -> (option, label, path in the summary, at_least)
    "min_answer_recall": (
        "--min-answer-recall",
        "fact recall",
        ("answers", PIPELINE, "fact_recall"),
        True,
    ),
    "min_retrieval_recall5": (
        "--min-retrieval-recall5",
        "answer recall@5 (fused)",
        ("retrieval", PIPELINE, "recall@5"),
        True,
    ),
    "min_abstain": (
        "--min-abstain",
        "abstain (unanswerable)",
        ("answers", PIPELINE, "abstain_unanswerable"),
        True,
    ),
    "max_wrong_abstain": (
        "--max-wrong-abstain",
        "wrong abstain (answerable)",
        ("answers", PIPELINE, "wrong_abstain"),
        False,
    ),
    "min_verbatim": ("--min-verbatim", "verbatim", ("answers", PIPELINE, "verbatim"), True),
    "min_confident_precision": (
        "--min-confident-precision",
        "confident answers right",
        ("confidence", "confident_precision"),
        True,
    ),
    "min_support": ("--min-support", "support", ("answers", PIPELINE, "support"), True),
    # conversation sets (qa.eval.rewrites): the follow-up rewrite right, over all turns
    "min_rewrite_accuracy": (
        "--min-rewrite-accuracy",
        "rewrite accuracy",
        ("rewrite", "all", "accuracy"),
        True,
    ),
}


def thresholds(**given: float | None) -> list[Threshold]:
    """Thresholds from keyword arguments named as in THRESHOLDS; None ones are skipped."""
    out = []
    for key, value in given.items():
        if value is not None:
            option, label, path, at_least = THRESHOLDS[key]
            out.append(Threshold(option, label, path, value, at_least))
    return out


def missed(summary: dict[str, Any], checks: Sequence[Threshold]) -> list[str]:
    """A message for every threshold the summary misses."""
    problems = []
    for t in checks:
        figure: Any = summary
        for key in t.path:
            figure = figure[key]
        if figure is None:
            problems.append(f"{t.label} was not measured (no questions of that kind): {t.option}")
        elif (figure < t.value) if t.at_least else (figure > t.value):
            word = "below" if t.at_least else "above"
            problems.append(f"{t.label} {figure:.3f} is {word} {t.option} {t.value:g}")
    return problems
