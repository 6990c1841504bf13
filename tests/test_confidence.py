"""Calibrated confidence: the evidence of an answer, the shipped calibrator, the three tiers as
the engine, the HTTP service and the CLI give them, the figures `qa eval` reports, and the seeded
training command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qa.answering import confidence
from qa.answering.confidence import FEATURES, Calibrator, CalibratorError, default_calibrator, load
from qa.cli import app
from qa.config import Settings
from qa.engine import Engine
from qa.eval.metrics import ece, reliability, risk_coverage
from qa.serving.app import create_app
from qa.training.calibrator import Example, train

QUESTION = "How much is the loan for the Kestrel Ridge wind farm?"


def constant(p: float, answer_at: float, guess_at: float) -> Calibrator:
    """A calibrator that rates every answer `p`."""
    return Calibrator(
        features=("reader_prob",),
        mean=(0.0,),
        scale=(1.0,),
        coef=(0.0,),
        intercept=math.log(p / (1 - p)),
        answer_at=answer_at,
        guess_at=guess_at,
    )


@pytest.fixture(scope="module")
def engine(corpus_index, embedder) -> Engine:
    return Engine(corpus_index, embedder)


def test_an_answer_carries_every_signal_the_calibrator_reads(engine):
    answer = engine.ask(QUESTION)
    assert not answer.abstained
    assert set(answer.evidence) == set(FEATURES)
    assert all(math.isfinite(v) for v in answer.evidence.values())
    assert 0.0 <= answer.evidence["reader_prob"] <= 1.0


def test_the_shipped_calibrator_reads_every_signal_and_rates_in_zero_one(engine):
    shipped = default_calibrator()
    assert set(shipped.features) <= set(FEATURES)
    assert 0.0 <= shipped.guess_at < shipped.answer_at < 1.0
    answer = engine.ask(QUESTION)
    assert answer.confidence == pytest.approx(shipped.probability(answer.evidence), abs=1e-4)
    assert answer.tier == shipped.tier(answer.confidence)


@pytest.mark.parametrize(
    ("p", "tier", "short", "confident"),
    [(0.9, "answer", True, True), (0.5, "best_guess", False, False)],
)
def test_only_a_confident_answer_has_a_short_answer(
    corpus_index, embedder, p, tier, short, confident
):
    engine = Engine(corpus_index, embedder, calibrator=constant(p, answer_at=0.8, guess_at=0.2))
    answer = engine.ask(QUESTION)
    assert not answer.abstained and answer.citations
    assert (answer.tier, answer.confident) == (tier, confident)
    assert answer.confidence == pytest.approx(p)
    assert bool(answer.short_answer) is short
    if short:
        assert "840 million" in answer.short_answer


def test_below_the_lower_boundary_the_sources_dont_say(corpus_index, embedder):
    engine = Engine(corpus_index, embedder, calibrator=constant(0.1, answer_at=0.8, guess_at=0.2))
    answer = engine.ask(QUESTION)
    assert answer.abstained and answer.tier == "not_in_sources" and answer.confident is False
    assert "unlikely to answer it (confidence 0.10, below 0.20)" in answer.answer
    assert not answer.citations and answer.passages  # related reading stays


def test_an_abstention_has_no_confidence(engine):
    answer = engine.ask("What is the interest rate on the loan for the Kestrel Ridge wind farm?")
    assert answer.abstained
    assert (answer.tier, answer.confidence, answer.confident) == ("not_in_sources", None, False)


def test_ask_over_http_and_the_cli_say_how_sure(corpus_index, embedder):
    engine = Engine(corpus_index, embedder, calibrator=constant(0.5, answer_at=0.8, guess_at=0.2))
    with TestClient(create_app(Settings(), engine=engine)) as client:
        body = client.post("/ask", json={"question": QUESTION}).json()
    assert body["tier"] == "best_guess" and body["confident"] is False
    assert body["confidence"] == pytest.approx(0.5) and body["short_answer"] is None
    result = CliRunner().invoke(app, ["ask", QUESTION, "--index", str(corpus_index), "--json"])
    assert result.exit_code == 0, result.output
    shipped = json.loads(result.stdout)
    assert shipped["tier"] in ("answer", "best_guess") and 0 <= shipped["confidence"] <= 1
    assert (shipped["short_answer"] is not None) is (shipped["tier"] == "answer")
    plain = CliRunner().invoke(app, ["ask", QUESTION, "--index", str(corpus_index)])
    assert ("Best guess" in plain.stdout) is (shipped["tier"] == "best_guess")


def test_a_damaged_calibrator_is_one_clear_error(tmp_path):
    with pytest.raises(CalibratorError, match="git checkout -- models/calibrator"):
        load(tmp_path)
    (tmp_path / confidence.MODEL_FILE).write_text(json.dumps({"model": {"features": ["a"]}}))
    with pytest.raises(CalibratorError, match="qa train calibrator"):
        load(tmp_path)


# The figures.


def test_calibration_figures():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=4000)
    honest = (rng.uniform(size=4000) < p).astype(int)
    assert ece(p, honest) < 0.03
    assert ece(p, 1 - honest) > 0.3  # confidently wrong
    rows = reliability(p, honest)
    assert len(rows) == 10 and sum(r["n"] for r in rows) == 4000
    curve = risk_coverage(p, honest)
    assert curve[0]["precision"] >= curve[-1]["precision"] and curve[-1]["coverage"] == 1.0


# Training: seeded, out-of-fold, saved atomically and loadable.


def _examples(n: int = 400) -> list[Example]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        prob = float(rng.uniform())
        right = bool(rng.uniform() < prob)
        evidence = {f: float(rng.normal()) for f in FEATURES} | {"reader_prob": prob}
        out.append(Example("synthetic", f"group {i % 4}", f"q{i}", False, False, right, evidence))
    return out


def test_training_is_seeded_and_writes_a_loadable_calibrator(tmp_path):
    examples = tmp_path / "examples.jsonl"
    examples.write_text("".join(json.dumps(e.__dict__) + "\n" for e in _examples()))
    figures = train([], tmp_path / "a", examples, say=lambda s: None)
    train([], tmp_path / "b", examples, say=lambda s: None)
    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    assert a == b
    assert a.coef[a.features.index("reader_prob")] > 0  # the one real signal
    assert figures["out_of_fold"]["synthetic"]["auc"] > 0.7
    assert (tmp_path / "a" / "calibration.png").stat().st_size > 0
    assert not list(tmp_path.glob(".calibrator-*"))  # nothing half-written left behind
