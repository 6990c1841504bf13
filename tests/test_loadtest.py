"""`qa bench serve` drives a real service process: it must run clean (no timing asserted)."""

from __future__ import annotations

from qa.eval.loadtest import bench_serve, format_serve
from qa.eval.sets import EvalQuestion
from tests.conftest import CORPUS_QUESTIONS


def test_load_against_a_real_service_has_no_errors(corpus_index):
    questions = [EvalQuestion.model_validate(q) for q in CORPUS_QUESTIONS.values()][:8]
    result = bench_serve(corpus_index, questions, clients=3, seconds=2.0)
    assert result["errors"] == 0, result["error_samples"]
    assert result["ok"] > 0 and result["requests"] == result["ok"]
    assert "errors 0" in format_serve(result)
    # The reference side of the same run: a torch service encoding each question alone.
    assert result["baseline"]["errors"] == 0 and result["baseline"]["ok"] > 0
    assert result["baseline"]["embed_backend"] == "torch"
    assert result["peak_rss_mb"] > 0 and "over baseline" in format_serve(result)
