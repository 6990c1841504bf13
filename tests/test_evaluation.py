"""`qa eval` metrics on hand-made cases, an end-to-end run on a tiny set, and a bench smoke test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.encoders.embedding import default_embedder
from qa.eval import bench_ask, bench_index, bench_scale, metrics, report, summary
from qa.eval.metrics import (
    contains_answer,
    exact_match,
    f1_score,
    first_hit,
    mean_reciprocal_rank,
    normalize_answer,
    recall_at_k,
)
from qa.eval.sets import load_questions

# ---------------------------------------------------------------- metrics


def test_normalize_answer_follows_squad_and_reads_curly_quotes() -> None:
    assert normalize_answer("The  Normans!") == "normans"
    assert normalize_answer("an Apple, a pear") == "apple pear"
    assert normalize_answer("Washington’s supply chains") == "washingtons supply chains"
    assert normalize_answer("Washington's supply chains") == "washingtons supply chains"
    assert normalize_answer("U.S.") == "us"
    assert normalize_answer("U.S.", punct_as_space=True) == "u s"
    assert normalize_answer("theatre") == "theatre"  # "the" only as a word


def test_contains_answer_matches_whole_words_only() -> None:
    assert contains_answer("In April 1191 Richard left Messina.", ["1191"])
    assert not contains_answer("In 11915 nothing happened.", ["1191"])
    assert not contains_answer("It cost 100 dollars.", ["10"])
    assert contains_answer("the Rhine river", ["The Rhine"])
    assert contains_answer("Pakistan’s Reko Diq’s owner", ["Reko Diq"])  # possessive
    assert contains_answer("a loan from the U.S. bank", ["US"])
    assert contains_answer("$1.25 billion in financing", ["$1.25 billion"])
    assert not contains_answer("anything", [])
    assert not contains_answer("anything", ["", "  "])


def test_exact_match_and_f1_take_the_best_gold() -> None:
    golds = ["10th and 11th centuries", "in the 10th and 11th centuries"]
    assert exact_match("The 10th and 11th centuries.", golds) == 1.0
    assert exact_match("10th century", golds) == 0.0
    assert f1_score("10th and 11th centuries", golds) == 1.0
    # pred [10th, century] vs gold [10th, and, 11th, centuries]: P 1/2, R 1/4
    assert f1_score("10th century", ["10th and 11th centuries"]) == pytest.approx(1 / 3)
    assert f1_score("nothing alike", golds) == 0.0
    assert f1_score("", golds) == 0.0


def test_ranks_recall_at_k_and_mrr() -> None:
    texts = ["no answer here", "still nothing", "it was in 1191", "1191 again"]
    assert first_hit(texts, ["1191"]) == 3
    assert first_hit(texts, ["1066"]) is None
    ranks = [1, 3, None, 2]
    assert recall_at_k(ranks, 1) == 0.25
    assert recall_at_k(ranks, 2) == 0.5
    assert recall_at_k(ranks, 5) == 0.75
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert recall_at_k([], 5) is None


def test_citation_markers_are_not_answers() -> None:
    from qa.records import Answer

    result = Answer(
        answer="It happened twice. [1]",
        short_answer=None,
        abstained=False,
        query="q",
        citations=[],
        passages=[],
    )
    assert not contains_answer(metrics.answer_text(result), ["1"])


def test_thresholds_name_the_metric_and_the_option() -> None:
    figures = {
        "answers": {
            "fused": {"fact_recall": 0.8, "wrong_abstain": 0.1, "abstain_unanswerable": None}
        },
        "retrieval": {"fused": {"recall@5": 0.95}},
    }
    checks = summary.thresholds(
        min_answer_recall=0.85, max_wrong_abstain=0.2, min_retrieval_recall5=0.9
    )
    assert summary.missed(figures, checks) == [
        "fact recall 0.800 is below --min-answer-recall 0.85"
    ]
    assert summary.missed(figures, summary.thresholds(max_wrong_abstain=0.05)) == [
        "wrong abstain (answerable) 0.100 is above --max-wrong-abstain 0.05"
    ]
    (message,) = summary.missed(figures, summary.thresholds(min_abstain=0.5))
    assert "not measured" in message and "--min-abstain" in message


# ---------------------------------------------------------------- end to end

DOCS = {
    "rivers.txt": (
        "The Rhine is a European river. It begins in the Swiss Alps and flows north into the "
        "North Sea. The Rhine is about 1,230 kilometres long.\n\n"
        "Basel is the first large city on the river."
    ),
    "castles.md": (
        "# Norman castles\n\nThe Normans built many castles in England after 1066. "
        "The Tower of London was begun by William the Conqueror in 1078.\n\n"
        "Motte-and-bailey castles were quick to build from earth and timber."
    ),
}
QUESTIONS = [
    {
        "id": "q1",
        "question": "How long is the Rhine?",
        "answers": ["1,230 kilometres", "1,230"],
        "doc_id": "rivers.txt",
        "evidence": "The Rhine is about 1,230 kilometres long.",
        "unanswerable": False,
        "history": [],
    },
    {
        "id": "q2",
        "question": "Who began the Tower of London?",
        "answers": ["William the Conqueror"],
        "doc_id": "castles.md",
        "evidence": "The Tower of London was begun by William the Conqueror in 1078.",
        "unanswerable": False,
        "history": [],
    },
    {
        "id": "q3",
        "question": "What is the population of Basel?",
        "answers": [],
        "doc_id": None,
        "evidence": None,
        "unanswerable": True,
        "history": [],
    },
]


@pytest.fixture(scope="session")
def embedder():
    """The real bundled model, loaded once (the CLI's default_embedder() is this instance)."""
    model = default_embedder()
    model.embed_query("warm up")
    return model


@pytest.fixture
def tiny_set(tmp_path: Path) -> Path:
    set_dir = tmp_path / "tiny"
    (set_dir / "corpus").mkdir(parents=True)
    for name, text in DOCS.items():
        (set_dir / "corpus" / name).write_text(text, encoding="utf-8")
    lines = [json.dumps(q) for q in QUESTIONS]
    (set_dir / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return set_dir


def test_eval_end_to_end_writes_reports_and_fails_on_a_missed_threshold(
    embedder, tiny_set: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    index, out = tmp_path / "index", tmp_path / "out"
    args = ["eval", str(tiny_set), "--index", str(index), "--out", str(out)]
    result = runner.invoke(app, [*args, "--min-verbatim", "1.0"])
    assert result.exit_code == 0, result.output
    assert "recall@5" in result.output and "fact recall" in result.output

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["q1", "q2", "q3"]
    for r in records:
        assert set(r["retrieval"]) == {"bm25", "dense", "fused"}
        assert r["outcome"] in {"ok", "MISSED", "WRONG-ABSTAIN", "abstained-ok", "FALSE-ANSWER"}
        assert all(c["verbatim"] for c in r["citations"])
    assert records[0]["retrieval"]["fused"]["answer_rank"] == 1
    assert records[1]["retrieval"]["bm25"]["doc_rank"] == 1
    assert records[2]["retrieval"]["fused"]["answer_rank"] is None  # unanswerable: no gold

    figures = json.loads((out / "summary.json").read_text())
    assert figures["n_answerable"] == 2 and figures["n_unanswerable"] == 1
    assert figures["answers"]["fused"]["verbatim"] == 1.0
    assert figures["retrieval"]["fused"]["recall@5"] == 1.0
    assert figures["latency_ms"]["p50"] > 0
    # beside the default (QA_READER=short, calibrated), the same passages answered by the
    # rules alone and with the reader's short answer (no confidence): both abstain as the rules
    rules, with_span = (figures["answers"][k] for k in (summary.RULES, summary.RULES_READER_SPAN))
    for key in ("abstain_unanswerable", "wrong_abstain", "fact_recall"):
        assert with_span[key] == rules[key]
    assert "veto_calibration" not in figures and "reader_calibration" not in figures
    assert set(figures["latency_ms"]["p50_parts"]) == {"rewrite", "retrieve", "answer"}
    report = (out / "report.md").read_text()
    assert summary.RULES_READER_SPAN in report and "Reader veto" not in report
    assert "## Definitions" in report and "answer recall@k" in report
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"

    missed = runner.invoke(app, [*args, "--no-build", "--min-answer-recall", "1.01"])
    assert missed.exit_code == 1
    assert "--min-answer-recall 1.01" in missed.output
    assert "fact recall" in missed.output


def test_eval_of_a_set_with_no_answerable_question_writes_its_reports(
    embedder, tiny_set: Path, tmp_path: Path
) -> None:
    """An out-of-corpus set (every question unanswerable) has no recall curve to plot, and its
    confidence figures say how many answers were confident: none here."""
    (tiny_set / "questions.jsonl").write_text(json.dumps(QUESTIONS[2]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["eval", str(tiny_set), "--index", str(tmp_path / "index"), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--min-abstain", "1.0"])
    assert result.exit_code == 0, result.output
    figures = json.loads((out / "summary.json").read_text())
    assert figures["n_answerable"] == 0 and figures["confidence"]["tiers"]["answer"]["n"] == 0
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_llm_mode_scores_the_generated_answer_beside_the_extractive_one(
    embedder, tiny_set: Path, tmp_path: Path
) -> None:
    """`qa eval --mode llm`: what the model wrote, what verification removed and why."""
    from qa.engine import Engine
    from qa.eval.run import run_eval
    from qa.eval.summary import EXTRACTIVE, RESCUED
    from tests.llm_stub import Scripted

    # One true sentence and one invented one, whatever the question.
    generator = Scripted("The Rhine is about 1,230 kilometres long [1]. It was built in 1999 [1].")
    index = tmp_path / "index"
    engine = Engine(index, embedder, generator=generator)
    run = run_eval(tiny_set, index, top_k=3, engine=engine, mode="llm", limit=2)
    assert [r["id"] for r in run.records] == ["q1", "q2"]  # --limit
    q1 = run.records[0]
    assert q1["mode"] == "llm" and q1["llm"]["asked"] and q1["llm"]["generated"] == 2
    assert q1["removed_sentences"] == 1 and q1["fact_hit"]
    assert [c["supported"] for c in q1["llm"]["checks"]] == [True, False]
    assert q1["llm"]["reasons"] == ["names or numbers not in the quote"]
    figures = run.summary
    assert figures["mode"] == "llm" and "calibration" not in q1
    assert list(figures["answers"]) == ["bm25", "dense", EXTRACTIVE, "fused", RESCUED]
    assert figures["llm"]["generated_sentences"] >= 2
    assert figures["llm"]["removed_because"]["names or numbers not in the quote"] >= 1
    assert "LLM mode: the model was asked" in report.summary_tables(figures)


def test_eval_refuses_a_folder_without_questions(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--index", str(tmp_path / "i")])
    assert result.exit_code == 1
    assert "questions.jsonl" in result.output


def test_bench_functions_run_on_a_tiny_corpus(embedder, tiny_set: Path, tmp_path: Path) -> None:
    """A smoke test: the benches run and report; no speed is asserted."""
    indexed = bench_index.bench_index(tiny_set / "corpus", embedder, batch_size=8, repeats=1)
    assert indexed["embedded_chunks"] == indexed["chunks"] > 0
    assert len(indexed["runs"]["floor_s"]) == 2 and len(indexed["runs"]["noop_reindex_s"]) == 3
    assert "ratio pipeline/floor" in bench_index.format_index(indexed)

    from qa.indexing import index_paths

    index = tmp_path / "index"
    index_paths([tiny_set / "corpus"], index, embedder)
    asked = bench_ask.bench_ask(index, load_questions(tiny_set), warmup=1)
    assert asked["questions"] == 3 and len(asked["samples"]["default_ms"]) == 3
    assert set(asked["by_variant_ms"]) == {"off", "no-confidence", "default"}
    by = asked["by_variant_ms"]
    ratio = asked["default_vs_no_confidence_p50"]
    assert ratio == pytest.approx(by["default"]["p50"] / by["no-confidence"]["p50"], abs=1e-3)
    shown = bench_ask.format_ask(asked)
    assert "confidence off" in shown and f"{ratio:.2f}x" in shown and "floor" in shown
    assert bench_ask.plot_ask(asked, tmp_path / "ask.png").stat().st_size > 0

    out = tmp_path / "scaled"
    from qa.eval import synthetic
    from qa.store import folder as store

    base = store.open_snapshot(index)
    real = base.all_vectors()
    base.close()
    mixture = synthetic.fit_mixture(real)
    built = bench_scale.build_scaled(str(index), str(out), 25, mixture)
    assert built["chunks"] == 25 and built["copies"] > 1
    snap = store.open_snapshot(out)
    assert snap.n_chunks == 25
    for doc_id in snap.manifest["documents"]:  # perturbed copies keep exact offsets
        doc = snap.document(doc_id)
        assert all(doc.text[c.start : c.end] == c.text for _, c in snap.doc_chunks(doc_id))
    grown = snap.all_vectors()
    assert np.allclose(grown[: len(real)], real)  # the real chunks keep their real vectors
    assert np.allclose(np.linalg.norm(grown, axis=1), 1, atol=1e-5)
    assert (grown[len(real) :] @ real.T).max() < 1 - 1e-5  # draws, not copies of real ones
    assert "Gaussian mixture" in snap.manifest["synthetic"]
    snap.close()

    asked_qs = [{"question": q["question"], "history": []} for q in QUESTIONS]
    probes = synthetic.draw_any(mixture, 5, np.random.default_rng(1))
    queried = bench_scale.query_scaled(str(out), asked_qs, 3, 1, "folder-flat", None, probes)
    assert queried["ask_ms"]["p50"] > 0 and queried["rank_ms"]["p50"] > 0
    exact = queried.pop("dense_top")
    assert len(exact["questions"]) == len(QUESTIONS) and len(exact["probes"]) == 5
    ivf = tmp_path / "scaled-ivf"
    copied = bench_scale.copy_scaled(str(out), "folder-ivf", str(ivf))
    assert copied["disk_mb"] > 0 and store.open_snapshot(out).n_chunks == 25  # flat unharmed
    approx = bench_scale.query_scaled(str(ivf), asked_qs, 3, 1, "folder-ivf", exact, probes)
    assert approx["recall_at_10"] == approx["probe_recall_at_10"] == 1.0  # all lists probed
    row = {"size": 25, **built, "embed_est_s": 1.0, **queried}
    scaled = {"info": {"set": str(tiny_set)}, "floor_chunks_per_s": 25.0, "rows": [row]}
    assert bench_scale.plot_scale(scaled, tmp_path / "scale.png").stat().st_size > 0


def test_reader_policies_start_from_the_rules_decisions_qa_eval_scores(
    embedder, tiny_set: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """eval/reader_policies.py reads each question once and recomputes abstention offline: its
    rules-alone figures must be `qa eval`'s rules-only row on the same set, and a veto at 0
    must change nothing, or its tables mislead."""
    import importlib.util

    from qa.answering.reader import MODEL_DIR
    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location(
        "reader_policies", ROOT / "eval" / "reader_policies.py"
    )
    policies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(policies)

    index, out = tmp_path / "index", tmp_path / "out"
    result = CliRunner().invoke(
        app, ["eval", str(tiny_set), "--index", str(index), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rules = json.loads((out / "summary.json").read_text())["answers"][summary.RULES]

    monkeypatch.setenv("QA_READER", "off")  # what dump sets: the rules answer
    readings = tmp_path / "readings" / "tiny.jsonl"
    policies.main(["dump", str(tiny_set), "--index", str(index), "--model", str(MODEL_DIR),
                   "--out", str(readings)])  # fmt: skip
    rows = [json.loads(line) for line in readings.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    assert all("reader" in c["readings"] for r in rows for c in r["candidates"])
    alone = policies.rates(rows, lambda r: r["rules_abstained"])
    assert alone == (rules["abstain_unanswerable"], pytest.approx(rules["wrong_abstain"]))
    got = policies.veto_sweep(rows, "reader")
    assert got[0]["veto_prob"] == 0.0
    assert (got[0]["abstain_unanswerable"], got[0]["wrong_abstain"]) == alone
    wrong = [p["wrong_abstain"] for p in got]
    assert wrong == sorted(wrong)  # a higher veto never abstains less
    policies.main(["table", str(readings)])
    assert "+ veto by reader" in capsys.readouterr().out
