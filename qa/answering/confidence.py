"""How sure an extractive answer is: the evidence the pipeline saw, a calibrated probability that
the answer is right, and the tier a person is shown.

The evidence is what retrieval, the rules and the reader already computed for the answer (the
reader's probabilities for the rules' best sentences, their margin, the rules' coverage and
checks, the passages' scores and their gaps) plus checks of the short answer against the
question (its kind, whether it repeats the question, whether the question's names and figures
stand in the sentence). A logistic regression over that evidence (`models/calibrator`, trained by
`qa train calibrator` on questions asked through retrieval; see its model card) turns it into
the probability that the answer is right, and two boundaries make the tiers:

- `answer`: confident (at or above `answer_at`); the only tier with a short answer;
- `best_guess`: between the boundaries; shown plainly as uncertain, with its quotes;
- `not_in_sources`: below `guess_at`, or wherever the rules find no supporting sentence.

The model is a JSON file of coefficients (no pickle, nothing executable), read with numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from qa.answering.reader import Reading
from qa.language import answer_types, lexical
from qa.language.question import Question
from qa.records import Passage

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "calibrator"
MODEL_FILE = "calibrator.json"

ANSWER, BEST_GUESS, NOT_IN_SOURCES = "answer", "best_guess", "not_in_sources"
TIERS = (ANSWER, BEST_GUESS, NOT_IN_SOURCES)

_KINDS = {  # the asked-for kind, in the groups the calibrator tells apart
    answer_types.DATE: "kind_date",
    answer_types.COUNT: "kind_number",
    answer_types.NUMBER: "kind_number",
    answer_types.MONEY: "kind_number",
    answer_types.PERCENT: "kind_number",
    answer_types.DURATION: "kind_number",
    answer_types.SIZE: "kind_number",
    answer_types.LENGTH: "kind_number",
    answer_types.PERSON: "kind_person",
    answer_types.PLACE: "kind_place",
}
# What `evidence` returns, in the order the calibrator's coefficients follow.
FEATURES = (
    "reader_prob", "reader_logit", "reader_span_prob", "reader_null_prob", "rule_score",
    "rule_gap", "coverage", "typed", "named", "passage_rank",
    "top_score", "score_gap", "dense_score", "lexical_score", "has_short", "reader_short",
    "spans_agree", "short_words", "short_in_question", "question_words", "names_in_passage",
    "figures_in_sentence", "kind_other", "kind_date", "kind_number", "kind_person", "kind_place",
    "lacking_idf", "lacking_share", "lacking_idf_passage", "question_idf", "short_typed",
)  # fmt: skip


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class Sentence(Protocol):
    """The rules' view of one ranked sentence (an `answering.Candidate`)."""

    @property
    def text(self) -> str: ...
    @property
    def passage(self) -> int: ...
    @property
    def score(self) -> float: ...
    @property
    def coverage(self) -> float: ...
    @property
    def typed(self) -> bool: ...
    @property
    def named(self) -> bool: ...


def evidence(
    question: Question,
    passages: Sequence[Passage],
    ranked: Sequence[Sentence],
    readings: Sequence[Reading],
    short: str | None,
    rules_short: str | None,
    idf: Callable[[str], float],
) -> dict[str, float]:
    """The signals of one answer: `ranked` the rules' best sentences (the first one answers),
    `readings` the reader's reading of each, `short` the short answer shown, `rules_short` the
    one the rules' typed spans gave (the reader's span may have replaced it), `idf` the index's
    inverse document frequency of a stem."""
    best, read = ranked[0], readings[0]
    kind = question.kind
    q_words = question.words
    sentence = best.text
    passage = passages[best.passage]
    short_words = lexical.words(short) if short else []
    in_question = set(q_words)
    names = [n for n in question.names if n.lower() not in ("what", "who", "how")]
    named_here = [n for n in names if n.lower() in passage.text.lower()]
    figures = question.figures
    scores = [p.score for p in passages]
    # SQuAD 2.0's unanswerable questions read like answerable ones with one word changed: the
    # rarest question word the sentence (or its passage) lacks is the tell
    q_terms = set(question.terms)
    lacks = q_terms - set(lexical.terms(sentence))
    lacks_passage = q_terms - set(lexical.terms(passage.text))
    span_text = sentence[read.span[0] : read.span[1]] if read.span is not None else ""
    signals = {
        "reader_prob": read.prob,
        "reader_logit": _logit(read.prob),
        "reader_span_prob": read.span_prob if read.span is not None else 0.0,
        "reader_null_prob": read.null_prob,
        "rule_score": best.score,
        "rule_gap": best.score - (ranked[1].score if len(ranked) > 1 else 0.0),
        "coverage": best.coverage,
        "typed": float(best.typed),
        "named": float(best.named),
        "passage_rank": float(best.passage),
        "top_score": scores[0] if scores else 0.0,
        "score_gap": scores[0] - scores[1] if len(scores) > 1 else scores[0] if scores else 0.0,
        "dense_score": passage.dense_score,
        "lexical_score": passage.lexical_score,
        "has_short": float(bool(short)),
        "reader_short": float(bool(short) and short != rules_short),
        "spans_agree": float(bool(rules_short) and _same(span_text, rules_short)),
        "short_words": float(len(short_words)),
        "short_in_question": (
            sum(w in in_question for w in short_words) / len(short_words) if short_words else 0.0
        ),
        "question_words": float(len(q_words)),
        "names_in_passage": len(named_here) / len(names) if names else 1.0,
        "figures_in_sentence": (
            sum(f in sentence for f in figures) / len(figures) if figures else 1.0
        ),
        "kind_other": float(kind not in _KINDS),
        "lacking_idf": max((idf(t) for t in lacks), default=0.0),
        "lacking_share": len(lacks) / len(q_terms) if q_terms else 0.0,
        "lacking_idf_passage": max((idf(t) for t in lacks_passage), default=0.0),
        "question_idf": sum(idf(t) for t in q_terms) / len(q_terms) if q_terms else 0.0,
        "short_typed": float(bool(short and kind in _KINDS and answer_types.spans(short, kind))),
    }
    for group in sorted(set(_KINDS.values())):
        signals[group] = float(_KINDS.get(kind) == group)
    return signals


def _same(a: str, b: str | None) -> bool:
    """Whether two short answers overlap in words (one holds the other's words)."""
    x, y = set(lexical.words(a)), set(lexical.words(b or ""))
    return bool(x and y) and (x <= y or y <= x)


@dataclass(frozen=True)
class Calibrator:
    """A logistic regression over standardized evidence, and the two tier boundaries."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    answer_at: float  # confident at or above
    guess_at: float  # a best guess at or above; below, the sources don't say

    def probability(self, signals: dict[str, float]) -> float:
        """The probability that the answer with these signals is right."""
        x = np.array([signals.get(f, 0.0) for f in self.features], dtype=np.float64)
        z = (x - np.array(self.mean)) / np.array(self.scale)
        return float(1 / (1 + math.exp(-(float(z @ np.array(self.coef)) + self.intercept))))

    def tier(self, confidence: float) -> str:
        if confidence >= self.answer_at:
            return ANSWER
        return BEST_GUESS if confidence >= self.guess_at else NOT_IN_SOURCES

    @classmethod
    def from_json(cls, data: dict) -> Calibrator:
        n = len(data["features"])
        if not (len(data["mean"]) == len(data["scale"]) == len(data["coef"]) == n):
            raise ValueError("features, mean, scale and coef must have one entry per feature")
        return cls(
            features=tuple(data["features"]),
            mean=tuple(float(v) for v in data["mean"]),
            scale=tuple(float(v) or 1.0 for v in data["scale"]),
            coef=tuple(float(v) for v in data["coef"]),
            intercept=float(data["intercept"]),
            answer_at=float(data["answer_at"]),
            guess_at=float(data["guess_at"]),
        )


class CalibratorError(RuntimeError):
    """The calibrator's file is missing or unreadable."""


def load(model_dir: Path = MODEL_DIR) -> Calibrator:
    path = Path(model_dir) / MODEL_FILE
    try:
        return Calibrator.from_json(json.loads(path.read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CalibratorError(
            f"calibrator {path} cannot be read ({type(exc).__name__}: {exc}); restore it from "
            "git (git checkout -- models/calibrator) or retrain it with `qa train calibrator`"
        ) from exc


@lru_cache(maxsize=1)
def default_calibrator() -> Calibrator:
    """The shipped calibrator, read once per process."""
    return load()
