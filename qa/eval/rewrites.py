"""Measure the follow-up rewrite (`qa.retrieval.followups.rewrite`) on a conversation set,
without retrieval.

Each turn is labelled with what its search query must be (eval/README.md, "Conversation
sets"): the question as asked (`carry` empty: it names its own subject), or the question plus
words of the earlier turns (`carry`), without the earlier-turn words in `drop`. A turn's rewrite
is right when it is exactly that; accuracy is reported over all turns, over the turns that stand
alone, and over the follow-ups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.eval.report import markdown_table, run_info, write_records, write_text
from qa.eval.sets import ConversationTurn, load_set, load_turns
from qa.language import lexical
from qa.retrieval import followups

STANDS_ALONE = "stands alone"
FOLLOW_UP = "follow-up"
_POSSESSIVE = re.compile(r"['’]s$")


def _words(text: str) -> set[str]:
    """Lower-case words with a possessive dropped: "Pakistan's" meets "Pakistan"."""
    return {_POSSESSIVE.sub("", w) for w in lexical.words(text)}


def has_phrase(query_words: set[str], phrase: str) -> bool:
    """Whether every word of `phrase` is among the query's words."""
    return _words(phrase) <= query_words


def judge(turn: ConversationTurn, query: str) -> dict[str, Any]:
    """Whether `query` is what `turn` is labelled with, and what is missing or unwanted."""
    question = turn.question.strip()
    kind = FOLLOW_UP if turn.carry else STANDS_ALONE
    have = _words(query)
    added = have - _words(question)
    missing = [
        item
        for item in turn.carry
        if not any(has_phrase(have, p) for p in ([item] if isinstance(item, str) else item))
    ]
    unwanted = [w for w in turn.drop if _words(w) & added]
    right = (query == question) if kind == STANDS_ALONE else not missing and not unwanted
    return {"kind": kind, "right": right, "missing": missing, "unwanted": unwanted}


def _share(records: list[dict[str, Any]]) -> dict[str, Any]:
    right = sum(r["right"] for r in records)
    return {
        "turns": len(records),
        "right": right,
        "accuracy": right / len(records) if records else None,
    }


@dataclass
class RewriteRun:
    """What one `qa eval` run of a conversation set measured."""

    set_name: str
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    info: dict[str, Any]


def run_rewrite_eval(set_dir: Path, limit: int | None = None) -> RewriteRun:
    """Rewrite every turn of a conversation set and judge each query against its label."""
    eval_set = load_set(set_dir)
    records = []
    for turn in load_turns(eval_set)[:limit]:
        query = followups.rewrite(turn.question, turn.messages())
        records.append(
            {
                "id": turn.id,
                "question": turn.question,
                "earlier_questions": [t.content for t in turn.history if t.role == "user"],
                "query": query,
                "carry": turn.carry,
                "drop": turn.drop,
                **judge(turn, query),
            }
        )
    summary = {
        "rewrite": {
            "all": _share(records),
            STANDS_ALONE: _share([r for r in records if r["kind"] == STANDS_ALONE]),
            FOLLOW_UP: _share([r for r in records if r["kind"] == FOLLOW_UP]),
        }
    }
    info = run_info() | {"set": eval_set.name, "set_dir": str(set_dir)}
    return RewriteRun(eval_set.name, records, summary, info)


def summary_table(summary: dict[str, Any]) -> str:
    """Rewrite accuracy over all turns, the ones that stand alone, and the follow-ups."""
    rows = [
        [
            name,
            str(s["turns"]),
            str(s["right"]),
            "-" if s["accuracy"] is None else f"{s['accuracy']:.3f}",
        ]
        for name, s in summary["rewrite"].items()
    ]
    return "Follow-up rewrite (qa.retrieval.followups.rewrite)\n\n" + markdown_table(
        ["turns", "n", "rewrite right", "accuracy"], rows
    )


def _wrong_lines(records: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in records:
        if r["right"]:
            continue
        why = []
        if r["kind"] == STANDS_ALONE:
            why.append("should be searched as asked")
        if r["missing"]:
            why.append(f"missing {r['missing']}")
        if r["unwanted"]:
            why.append(f"carries {r['unwanted']}")
        lines.append(f"- `{r['id']}` {r['query']!r}: {'; '.join(why)}")
    return lines


def write_outputs(run: RewriteRun, out_dir: Path) -> dict[str, Path]:
    """results.jsonl, summary.json and report.md (the table, then every wrong turn)."""
    out_dir = Path(out_dir)
    paths = {
        "results": out_dir / "results.jsonl",
        "summary": out_dir / "summary.json",
        "report": out_dir / "report.md",
    }
    write_records(run.records, run.info, run.summary, paths)
    wrong = _wrong_lines(run.records) or ["none"]
    report = [f"# {run.set_name}", "", summary_table(run.summary), "", "Wrong turns:", "", *wrong]
    write_text(paths["report"], "\n".join(report) + "\n")
    return paths
