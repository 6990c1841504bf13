"""`qa bench serve` drives a real service process: it must run clean (no timing asserted)."""

from __future__ import annotations

from qa.eval.loadtest import bench_serve, format_serve
from qa.eval.sets import load_questions
from tests.conftest import ROOT


def test_load_against_a_real_service_has_no_errors(seed_index):
    questions = load_questions(ROOT / "eval/sets/seed-news")[:8]
    result = bench_serve(seed_index, questions, clients=3, seconds=2.0)
    assert result["errors"] == 0, result["error_samples"]
    assert result["ok"] > 0 and result["requests"] == result["ok"]
    assert "errors 0" in format_serve(result)
    # The reference side of the same run: a torch service encoding each question alone.
    assert result["baseline"]["errors"] == 0 and result["baseline"]["ok"] > 0
    assert result["baseline"]["embed_backend"] == "torch"
    assert result["peak_rss_mb"] > 0 and "over baseline" in format_serve(result)
