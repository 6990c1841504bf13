"""Scoring one answer against gold: SQuAD matching, exact match, F1, ranks, quote checks.

What each figure means is in `qa.eval.report.DEFINITIONS` (repeated in every report).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qa.eval.sets import EvalQuestion
from qa.records import Answer

_TYPOGRAPHIC = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKERS = re.compile(r"\s*\[\d+\]")


def normalize_answer(text: str, punct_as_space: bool = False) -> str:
    """SQuAD normalization (lower, no punctuation, no articles, one space), `’` read as `'`."""
    text = text.lower().translate(_TYPOGRAPHIC)
    text = _PUNCT.sub(" " if punct_as_space else "", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """Whether a gold answer occurs in `text` as whole words, after normalization."""
    for as_space in (False, True):
        hay = f" {normalize_answer(text, as_space)} "
        for gold in golds:
            needle = normalize_answer(gold, as_space)
            if needle and f" {needle} " in hay:
                return True
    return False


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD exact match, best over the gold answers."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD token F1, best over the gold answers."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def first_hit(texts: Sequence[str], golds: Sequence[str]) -> int | None:
    """1-based rank of the first text containing a gold answer, or None."""
    return next((i for i, t in enumerate(texts, start=1) if contains_answer(t, golds)), None)


def recall_at_k(ranks: Sequence[int | None], k: int) -> float | None:
    """Share of ranks that are at most k (None = not found)."""
    return mean([r is not None and r <= k for r in ranks])


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float | None:
    return mean([1 / r if r else 0.0 for r in ranks])


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def answer_text(answer: Answer) -> str:
    """The answer without its citation markers ("[1]" would match a gold "1")."""
    return _MARKERS.sub("", answer.answer)


def mean(flags: Sequence[float | bool]) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


@dataclass
class Scorer:
    """Scores answers against gold, checking quotes against the documents' text."""

    document_text: Callable[[str], str]
    _texts: dict[str, str] = field(default_factory=dict)

    def text(self, doc_id: str) -> str:
        if doc_id not in self._texts:
            self._texts[doc_id] = self.document_text(doc_id)
        return self._texts[doc_id]

    def answer(self, q: EvalQuestion, result: Answer) -> dict[str, Any]:
        """Flags for one answer (JSON-ready)."""
        citations = [
            {
                "n": c.n,
                "doc_id": c.doc_id,
                "start": c.start,
                "end": c.end,
                "quote": c.quote,
                "verbatim": self.text(c.doc_id)[c.start : c.end] == c.quote,
                "supports": bool(q.answers) and contains_answer(c.quote, q.answers),
            }
            for c in result.citations
        ]
        answered = not result.abstained
        short = result.short_answer
        return {
            "abstained": result.abstained,
            "fact_hit": answered and contains_answer(answer_text(result), q.answers),
            "supported": answered and any(c["supports"] for c in citations),
            "short_answer": short,
            "em": exact_match(short, q.answers) if short and q.answers else None,
            "f1": f1_score(short, q.answers) if short and q.answers else None,
            "citations": citations,
        }


def is_right(unanswerable: bool, flags: dict[str, Any]) -> bool:
    """Whether an answer is right: the question is answerable, the answer holds a gold answer,
    and its short answer, if it shows one, matches one (exact match after SQuAD normalization,
    or F1 >= 0.8). `flags`: `Scorer.answer`'s."""
    if unanswerable or flags["abstained"] or not flags["fact_hit"]:
        return False
    return flags["short_answer"] is None or short_right(flags)


def short_right(flags: dict[str, Any]) -> bool:
    """Whether a short answer matches a gold one: exact match after SQuAD normalization, or
    F1 >= 0.8. `flags`: `Scorer.answer`'s, for an answer with a short answer."""
    return bool(flags["em"]) or (flags["f1"] or 0.0) >= 0.8


def outcome(q: EvalQuestion, flags: dict[str, Any]) -> str:
    """A one-word verdict, to find failures quickly in the results file."""
    if q.unanswerable:
        return "abstained-ok" if flags["abstained"] else "FALSE-ANSWER"
    if flags["abstained"]:
        return "WRONG-ABSTAIN"
    return "ok" if flags["fact_hit"] else "MISSED"


# How well a confidence separates right answers from wrong ones (qa eval, qa train calibrator).

BINS = 10  # reliability diagram and expected calibration error


def auc(p: np.ndarray, y: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None


def reliability(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Equal-width bins of the predicted probability: mean prediction, share right, count."""
    rows = []
    edges = np.linspace(0, 1, bins + 1)
    for i in range(bins):
        inside = (p >= edges[i]) & ((p < edges[i + 1]) if i < bins - 1 else (p <= 1))
        if inside.any():
            rows.append(
                {"predicted": float(p[inside].mean()), "right": float(y[inside].mean()),
                 "n": int(inside.sum())}
            )  # fmt: skip
    return rows


def ece(p: np.ndarray, y: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the count-weighted gap between prediction and share right."""
    rows = reliability(p, y, bins)
    return float(sum(r["n"] * abs(r["predicted"] - r["right"]) for r in rows) / max(len(p), 1))


def risk_coverage(p: np.ndarray, y: np.ndarray) -> list[dict[str, float]]:
    """Answers kept from the most confident down: coverage (share kept) and precision."""
    order = np.argsort(-p, kind="stable")
    right = np.cumsum(y[order])
    n = np.arange(1, len(p) + 1)
    step = max(1, len(p) // 50)
    return [
        {"threshold": float(p[order][k]), "coverage": float(n[k] / len(p)),
         "precision": float(right[k] / n[k])}
        for k in list(range(0, len(p), step)) + [len(p) - 1]
    ]  # fmt: skip
