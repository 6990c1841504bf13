"""Eval sets read their data in place (set.toml), say what is missing, and convert SQuAD rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa.cli import app
from qa.errors import InvalidInput, MissingData
from qa.eval.sets import from_squad, load_questions, load_set
from qa.retrieval import followups
from tests.conftest import ROOT

SQUAD_ROW = {
    "id": "56ddde6b9a695914005b9629",
    "question": "When were the Normans in Normandy?",
    "answer": "10th and 11th centuries",
    "answers": [
        "10th and 11th centuries",
        "in the 10th and 11th centuries",
        "10th and 11th centuries",
    ],
    "doc_id": "Normans",
    "doc_path": "docs/Normans.txt",
    "paragraph_index": 0,
    "passage": "The Normans were the people who in the 10th and 11th centuries gave their name.",
}
QUESTION = {
    "id": "own-1",
    "question": "Who gave their name to Normandy?",
    "answers": ["The Normans"],
    "doc_id": "Normans.txt",
    "evidence": "The Normans were the people who in the 10th and 11th centuries gave their name.",
    "unanswerable": False,
    "history": [],
}


def test_a_squad_row_becomes_our_format() -> None:
    assert from_squad(SQUAD_ROW) == {
        "id": "56ddde6b9a695914005b9629",
        "question": "When were the Normans in Normandy?",
        "answers": ["10th and 11th centuries", "in the 10th and 11th centuries"],  # deduplicated
        "doc_id": "Normans.txt",
        "evidence": SQUAD_ROW["passage"],
        "unanswerable": False,
        "history": [],
    }


def make_set(tmp_path: Path, with_data: bool = True) -> Path:
    """A set in the repository layout whose corpus and SQuAD rows live in a shared folder."""
    repo, shared = tmp_path / "repo", tmp_path / "shared" / "data" / "mini"
    set_dir = repo / "eval" / "sets" / "mini"
    set_dir.mkdir(parents=True)
    (set_dir / "set.toml").write_text(
        'root = "../../.."\n'
        'corpus = ["../shared/data/mini/docs"]\n'
        'data_help = "get the mini data"\n'
        "[[questions]]\n"
        'path = "../shared/data/mini/questions.jsonl"\n'
        'format = "squad"\n'
        "[[questions]]\n"
        'path = "eval/sets/mini/questions.jsonl"\n',
        encoding="utf-8",
    )
    (set_dir / "questions.jsonl").write_text(json.dumps(QUESTION) + "\n", encoding="utf-8")
    if with_data:
        (shared / "docs").mkdir(parents=True)
        (shared / "docs" / "Normans.txt").write_text(SQUAD_ROW["passage"], encoding="utf-8")
        (shared / "questions.jsonl").write_text(json.dumps(SQUAD_ROW) + "\n", encoding="utf-8")
    return set_dir


def test_squad2_rows_are_read_for_the_articles_named_with_their_paragraph(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    paragraphs = [
        {"article": "Normans", "para": 0, "context": SQUAD_ROW["passage"]},
        {"article": "Rhine", "para": 0, "context": "The Rhine flows north."},
    ]
    rows = [
        {
            "id": "a",
            "article": "Normans",
            "para": 0,
            "question": "When?",
            "unanswerable": False,
            "answers": ["10th and 11th centuries", "10th and 11th centuries"],
        },
        {
            "id": "b",
            "article": "Normans",
            "para": 0,
            "question": "Who ate?",
            "unanswerable": True,
            "answers": [],
        },
        {
            "id": "c",
            "article": "Rhine",
            "para": 0,
            "question": "Where?",
            "unanswerable": False,
            "answers": ["north"],
        },
    ]
    for name, lines in (("paragraphs.jsonl", paragraphs), ("questions.jsonl", rows)):
        (shared / name).write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    set_dir = tmp_path / "set"
    set_dir.mkdir()
    (set_dir / "set.toml").write_text(
        'root = ".."\ncorpus = ["docs"]\n[[questions]]\npath = "shared/questions.jsonl"\n'
        'format = "squad2"\narticles = ["Normans"]\n',
        encoding="utf-8",
    )
    answerable, unanswerable = load_questions(set_dir)  # Rhine's left out
    assert (answerable.id, answerable.answers) == ("a", ["10th and 11th centuries"])
    assert answerable.doc_id == "Normans.txt" and answerable.evidence == SQUAD_ROW["passage"]
    assert unanswerable.unanswerable and unanswerable.answers == [] and unanswerable.doc_id is None


def test_set_toml_paths_are_relative_to_its_root(tmp_path: Path) -> None:
    eval_set = load_set(make_set(tmp_path))
    shared = (tmp_path / "shared" / "data" / "mini").resolve()
    assert [p.resolve() for p in eval_set.corpus] == [shared / "docs"]
    questions = load_questions(eval_set)
    assert [q.id for q in questions] == [SQUAD_ROW["id"], "own-1"]  # in file order
    assert questions[0].doc_id == "Normans.txt" and questions[0].evidence == SQUAD_ROW["passage"]


def test_missing_shared_data_is_named_with_how_to_get_it(tmp_path: Path) -> None:
    eval_set = load_set(make_set(tmp_path, with_data=False))
    with pytest.raises(MissingData, match="mini/questions.jsonl.*get the mini data"):
        load_questions(eval_set)


def test_qa_eval_exits_2_naming_the_missing_folder(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, with_data=False)
    args = ["eval", str(set_dir), "--index", str(tmp_path / "index")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "shared/data/mini" in result.output and "get the mini data" in result.output
    skipped = CliRunner().invoke(app, [*args, "--skip-if-missing"])
    assert skipped.exit_code == 0 and "skipped:" in skipped.output


def test_a_bad_set_toml_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "set.toml").write_text('corpus = ["docs"]\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"\[\[questions\]\]"):
        load_set(tmp_path)
    (tmp_path / "set.toml").write_text(
        'corpus = ["docs"]\n[[questions]]\npath = "q.jsonl"\nformat = "csv"\n', encoding="utf-8"
    )
    with pytest.raises(InvalidInput, match="format 'csv'"):
        load_set(tmp_path)


# ---------------------------------------------------------------- the project's own sets

SETS = ROOT / "eval" / "sets"
SQUAD_DEV = load_set(SETS / "squad-dev")
SQUAD_DATA = SQUAD_DEV.corpus + tuple(f.path for f in SQUAD_DEV.question_files)
needs_squad = pytest.mark.skipif(
    not all(p.exists() for p in SQUAD_DATA),
    reason="needs the shared SQuAD data: ../shared/data/squad-dev (eval/sets/squad-dev/README.md)",
)


@needs_squad
def test_squad_dev_holds_squads_200_questions_then_ours() -> None:
    questions = load_questions(SQUAD_DEV)
    squad = [q for q in questions if not q.id.startswith(("squad-", "blind-squad-"))]
    assert len(questions) == 329 and questions[:200] == squad
    docs = {p.name for p in SQUAD_DEV.corpus[0].iterdir()}
    assert len(docs) == 24 and {q.doc_id for q in squad} <= docs
    assert all(q.answers and q.evidence and not q.unanswerable for q in squad)


@needs_squad
def test_every_eval_set_validates() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "validate_sets.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "squad-dev: 329 valid questions" in result.stdout
    assert "conversations: 46 valid conversation turns" in result.stdout
    assert "conversations-blind: 25 valid conversation turns" in result.stdout


# ---------------------------------------------------------------- conversation sets

EXIM = [
    {"role": "user", "content": "How big is the EXIM loan for Reko Diq?"},
    {"role": "assistant", "content": "$1.25 billion."},
]
TURNS = [
    {"id": "t-1", "question": "Who was Rollo?", "history": EXIM, "carry": [], "drop": ["EXIM"]},
    {
        "id": "t-2",
        "question": "How many jobs will it create?",
        "history": EXIM,
        "carry": [["Reko Diq", "EXIM"]],
        "drop": [],
    },
]


def make_conversation_set(tmp_path: Path, turns: list[dict]) -> Path:
    set_dir = tmp_path / "talk"
    set_dir.mkdir()
    (set_dir / "set.toml").write_text(
        'corpus = ["docs"]\n[[questions]]\npath = "turns.jsonl"\nformat = "conversation"\n',
        encoding="utf-8",
    )
    lines = "".join(json.dumps(t) + "\n" for t in turns)
    (set_dir / "turns.jsonl").write_text(lines, encoding="utf-8")
    return set_dir


def test_a_rewrite_is_judged_against_its_label() -> None:
    from qa.eval.rewrites import judge
    from qa.eval.sets import ConversationTurn

    alone, follow_up = (ConversationTurn.model_validate(t) for t in TURNS)
    assert judge(alone, "Who was Rollo?")["right"]
    assert not judge(alone, "Who was Rollo? (loan)")["right"]  # anything added is wrong
    assert judge(follow_up, "How many jobs will it create? (EXIM loan)")["right"]  # one of two
    missed = judge(follow_up, "How many jobs will it create? (Reko)")  # a phrase needs all words
    assert not missed["right"] and missed["missing"] == [["Reko Diq", "EXIM"]]
    follow_up.drop = ["loan", "jobs"]  # a dropped word counts only when the rewrite added it
    wrong = judge(follow_up, "How many jobs will it create? (EXIM's loan)")
    assert not wrong["right"] and wrong["unwanted"] == ["loan"]


def test_qa_eval_measures_a_conversation_set_without_an_index(tmp_path: Path) -> None:
    set_dir = make_conversation_set(tmp_path, TURNS)
    out = tmp_path / "report"
    args = ["eval", str(set_dir), "--out", str(out), "--index", str(tmp_path / "no-index")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rewrite right" in result.output and "| all " in result.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["t-1", "t-2"]
    assert [r["query"] for r in records] == [followups.rewrite(t["question"], EXIM) for t in TURNS]
    assert [r["kind"] for r in records] == ["stands alone", "follow-up"]
    summary = json.loads((out / "summary.json").read_text())["rewrite"]
    right = sum(r["right"] for r in records)
    assert summary["all"] == {"turns": 2, "right": right, "accuracy": right / 2}
    assert not (tmp_path / "no-index").exists()  # nothing indexed, nothing retrieved
    # a label no rewrite of this history can meet: the run fails its threshold
    (tmp_path / "bad").mkdir()
    unmet = {**TURNS[1], "question": "And how many jobs?", "carry": ["Balochistan"]}
    bad = make_conversation_set(tmp_path / "bad", [unmet])
    args = ["eval", str(bad), "--out", str(out), "--min-rewrite-accuracy", "0.5"]
    missed = CliRunner().invoke(app, args)
    assert missed.exit_code == 1 and "rewrite accuracy 0.000 is below" in missed.output


def test_conversation_sets_take_only_their_own_threshold(tmp_path: Path) -> None:
    set_dir = make_conversation_set(tmp_path, TURNS)
    result = CliRunner().invoke(app, ["eval", str(set_dir), "--min-answer-recall", "0.5"])
    assert result.exit_code == 1 and "only --min-rewrite-accuracy applies" in result.output
    with pytest.raises(InvalidInput, match="conversation turns"):
        load_questions(set_dir)
    (set_dir / "set.toml").write_text(
        'corpus = ["docs"]\n[[questions]]\npath = "turns.jsonl"\nformat = "conversation"\n'
        '[[questions]]\npath = "q.jsonl"\n',
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput, match="not both"):
        load_set(set_dir)
