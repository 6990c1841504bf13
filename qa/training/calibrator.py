"""Train the calibrator (`qa/answering/confidence.py`): `qa train calibrator`.

Every question of the training sets is asked through the product (`Engine.ask`: retrieval, the
rules, the reader), and each answer given is labelled right or wrong: right when the question is
answerable, the answer holds a gold answer, and its short answer (if any) matches one (exact match
after SQuAD normalization, or F1 >= 0.8). A logistic regression over the answers' evidence learns
the probability of being right. Every figure on a training set is out of fold: leave one group out
(a SQuAD article, a news week), so no answer is rated by a model that saw its article or week.

Training sets (never squad-dev, squad-dev-blind, seed-news or their questions):
- squad2-heldout: SQuAD 2.0's questions, answerable and adversarial unanswerable, about the four
  articles the shipped reader never trained on (its readings there are honest);
- news-dev-calib: real news quiz questions (RealTime QA, weeks 2023-03-10 .. 2023-05-26), built
  locally; skipped with a message when absent (the calibrator then learns from SQuAD alone).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.answering.confidence import FEATURES, MODEL_DIR, MODEL_FILE, NOT_IN_SOURCES, Calibrator
from qa.eval.metrics import auc, ece, is_right, reliability, risk_coverage

if TYPE_CHECKING:
    from qa.engine import Engine

TRAIN_SETS = ("squad2-heldout", "news-dev-calib")
SEED = 13
# The tier boundaries, on the calibrated probability (model card: how they were chosen)
ANSWER_AT = 0.5  # confident: more likely right than wrong
GUESS_AT = 0.0  # below this, the sources don't say (0: only the rules abstain; model card)
C = 0.05  # inverse L2 strength of the logistic regression (chosen out of fold, model card)


@dataclass(frozen=True)
class Example:
    """One question asked through the product, and what became of it."""

    set: str
    group: str  # the article or week: what leave-one-group-out holds out
    id: str
    unanswerable: bool
    abstained: bool
    right: bool
    evidence: dict[str, float]


def _group(note: str | None, fallback: str) -> str:
    """The article of a SQuAD question ("SQuAD 2.0 dev, Normans paragraph 3"), the week of a
    news one ("RealTime QA week 20230310")."""
    if note and (m := re.match(r"SQuAD 2\.0 dev, (.+) paragraph \d+", note)):
        return m.group(1)
    if note and (m := re.match(r"RealTime QA week (\d+)", note)):
        return f"week {m.group(1)}"
    return fallback


def collect(set_dir: Path, progress: bool = False, engine: Engine | None = None) -> list[Example]:
    """Ask every question of the set through `Engine.ask` on its index (built if needed)."""
    from tqdm import tqdm

    from qa.engine import Engine
    from qa.eval.metrics import Scorer
    from qa.eval.sets import build_index, default_index_dir, load_questions, load_set

    eval_set = load_set(set_dir)
    questions = load_questions(eval_set)
    index_dir = default_index_dir(set_dir)
    if engine is None:
        build_index(eval_set, index_dir, progress=progress)
        engine = Engine(index_dir, confidence_mode="evidence")  # every answer, unrated
    scorer = Scorer(lambda doc_id: engine.document(doc_id).text)
    examples = []
    for q in tqdm(questions, desc=f"asking {eval_set.name}", unit="q", disable=not progress):
        answer = engine.ask(q.question, history=q.messages())
        flags = scorer.answer(q, answer)
        examples.append(
            Example(
                set=eval_set.name,
                group=_group(q.note, eval_set.name),
                id=q.id,
                unanswerable=q.unanswerable,
                abstained=answer.abstained,
                right=is_right(q.unanswerable, flags),
                evidence=answer.evidence,
            )
        )
    return examples


def rated(examples: Sequence[Example]) -> list[Example]:
    """The answers the calibrator rates: given, with the reader's evidence."""
    return [e for e in examples if not e.abstained and e.evidence]


def matrix(examples: Sequence[Example], features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[e.evidence.get(f, 0.0) for f in features] for e in examples], dtype=float)
    return x, np.array([e.right for e in examples], dtype=int)


def fit(x: np.ndarray, y: np.ndarray, c: float = C) -> tuple[np.ndarray, np.ndarray, Any]:
    """(mean, scale, model): a logistic regression on standardized features (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000, random_state=SEED)
    model.fit((x - mean) / scale, y)
    return mean, scale, model


def out_of_fold(examples: Sequence[Example], features: Sequence[str], c: float = C) -> np.ndarray:
    """Each answer's probability from a model fitted without its group (article or week)."""
    x, y = matrix(examples, features)
    groups = np.array([e.group for e in examples])
    p = np.zeros(len(examples))
    for g in sorted(set(groups)):
        held = groups == g
        if len(set(y[~held])) < 2:
            p[held] = y[~held].mean() if (~held).any() else 0.5
            continue
        mean, scale, model = fit(x[~held], y[~held], c)
        p[held] = model.predict_proba((x[held] - mean) / scale)[:, 1]
    return p


def tiers(
    examples: Sequence[Example], p: dict[str, float], calibrator: Calibrator
) -> dict[str, Any]:
    """Per set, the tiers `qa eval` reports (`summary.tier_figures`), from the out-of-fold
    probabilities `p` of the rated answers (by id)."""
    from qa.eval.summary import tier_figures

    def record(e: Example) -> dict[str, Any]:
        rated = not e.abstained and e.id in p
        return {
            "tier": calibrator.tier(p[e.id]) if rated else NOT_IN_SOURCES,
            "right": e.right,
            "abstained": e.abstained,
            "unanswerable": e.unanswerable,
            "confidence": p[e.id] if rated else None,
        }

    return {
        name: {"questions": sum(e.set == name for e in examples)}
        | tier_figures([record(e) for e in examples if e.set == name])
        for name in sorted({e.set for e in examples})
    }


def train(
    set_dirs: Sequence[Path],
    out_dir: Path = MODEL_DIR,
    examples_file: Path | None = None,
    progress: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Collect (or reuse `examples_file`), fit, report out-of-fold figures, save."""
    examples = _examples(set_dirs, examples_file, progress, say)
    answers = rated(examples)
    if len(answers) < 50 or len({e.right for e in answers}) < 2:
        raise ValueError(f"only {len(answers)} rated answers: too few to fit a calibrator")
    features = list(FEATURES)
    p = out_of_fold(answers, features)
    x, y = matrix(answers, features)
    mean, scale, model = fit(x, y)
    calibrator = Calibrator(
        features=tuple(features),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        answer_at=ANSWER_AT,
        guess_at=GUESS_AT,
    )
    oof = {e.id: float(q) for e, q in zip(answers, p, strict=True)}
    names = sorted({e.set for e in answers})
    by_set = {n: np.array([e.set == n for e in answers]) for n in names}
    figures = {
        "out_of_fold": {
            n: _figures([e for e in answers if e.set == n], p[by_set[n]]) for n in names
        }
        | {"all": _figures(answers, p)},
        "tiers_out_of_fold": tiers(examples, oof, calibrator),
        "contributions": contributions(answers, features, p),
        "groups": sorted({f"{e.set}: {e.group}" for e in examples}),
        "n_questions": len(examples),
        "n_answers": len(answers),
    }
    save(calibrator, figures, out_dir, answers, p)
    return figures


def _figures(examples: Sequence[Example], p: np.ndarray) -> dict[str, Any]:
    y = np.array([e.right for e in examples], dtype=int)
    return {
        "answers": len(examples),
        "right": float(y.mean()) if len(y) else None,
        "auc": auc(p, y),
        "ece": ece(p, y),
        "reliability": reliability(p, y),
        "risk_coverage": risk_coverage(p, y),
    }


def contributions(
    examples: Sequence[Example], features: Sequence[str], p: np.ndarray
) -> dict[str, float]:
    """Out-of-fold AUC with all the evidence (`p`: its out-of-fold probabilities), and its loss
    with each group of signals left out."""
    _, y = matrix(examples, features)
    full = auc(p, y) or 0.0
    out = {"all signals": round(full, 4)}
    for name, prefix in SIGNAL_GROUPS.items():
        kept = [f for f in features if not f.startswith(prefix)]
        out[f"without {name}"] = round(auc(out_of_fold(examples, kept), y) or 0.0, 4)
    return out


SIGNAL_GROUPS = {  # evidence names by the part of the pipeline that computes them
    "the reader": ("reader_",),
    "the rules": ("rule_", "coverage", "typed", "named"),
    "retrieval": ("top_score", "score_gap", "dense_score", "lexical_score", "passage_rank"),
    "short-answer checks": ("has_short", "short_", "spans_agree", "reader_short"),
    "question checks": ("question_words", "names_in_passage", "figures_in_sentence", "kind_"),
    "lacking words": ("lacking_", "question_idf"),
}


def _examples(
    set_dirs: Sequence[Path], examples_file: Path | None, progress: bool, say: Callable[[str], None]
) -> list[Example]:
    from qa.errors import MissingData

    if examples_file is not None and examples_file.is_file():
        say(f"reusing the answers in {examples_file}")
        return [Example(**json.loads(line)) for line in examples_file.read_text().splitlines()]
    examples: list[Example] = []
    for set_dir in set_dirs:
        try:
            examples += collect(set_dir, progress)
        except MissingData as exc:
            say(f"skipping {set_dir}: {exc}")
    if examples_file is not None:
        examples_file.parent.mkdir(parents=True, exist_ok=True)
        examples_file.write_text("".join(json.dumps(asdict(e)) + "\n" for e in examples))
    return examples


def save(
    calibrator: Calibrator,
    figures: dict[str, Any],
    out_dir: Path,
    answers: Sequence[Example],
    p: np.ndarray,
) -> None:
    """The model with its figures, and the plots; atomically (built beside, then renamed)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".calibrator-", dir=out_dir.parent))
    data = {
        "model": asdict(calibrator),
        "seed": SEED,
        "c": C,
        "figures": figures,
    }
    (tmp / MODEL_FILE).write_text(json.dumps(data, indent=1))
    plot(answers, p, tmp / "calibration.png")
    if (out_dir / "MODEL_CARD.md").is_file():
        shutil.copy2(out_dir / "MODEL_CARD.md", tmp / "MODEL_CARD.md")
    os.chmod(tmp, 0o755)
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def plot(answers: Sequence[Example], p: np.ndarray, path: Path) -> None:
    """Reliability diagram and risk-coverage curve, out of fold, one line per training set."""
    from qa.eval.report import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for name in sorted({e.set for e in answers}):
        mask = np.array([e.set == name for e in answers])
        y = np.array([e.right for e in answers])[mask].astype(int)
        rows = reliability(p[mask], y)
        left.plot([r["predicted"] for r in rows], [r["right"] for r in rows], marker="o",
                  label=f"{name} (ECE {ece(p[mask], y):.3f})")  # fmt: skip
        curve = risk_coverage(p[mask], y)
        right.plot([c["coverage"] for c in curve], [c["precision"] for c in curve],
                   label=f"{name} (AUC {auc(p[mask], y) or math.nan:.2f})")  # fmt: skip
    left.set(xlabel="predicted probability right", ylabel="share right", title="Reliability")
    right.set(xlabel="coverage (answers kept, most confident first)", ylabel="precision",
              title="Risk-coverage", ylim=(0, 1.02))  # fmt: skip
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    save_figure(fig, path)
