#!/usr/bin/env python3
"""Validate every eval set under eval/sets/.

Each set is read as `qa eval` reads it (its set.toml: corpus and question files, SQuAD's rows
converted). Checks: every question file is well-formed JSON lines with the required keys and
types; ids are unique within a set; answerable questions have a doc_id that is a document of the
corpus (the id `qa index` gives it), every answer and the evidence occur verbatim in that
document, and at least one answer occurs in the evidence; unanswerable questions have
answers == [], doc_id == null and evidence == null; history is a list of
{"role": "user"|"assistant", "content": str}. Conversation sets (format "conversation") hold
turns instead: each has a history, a doc_id of the corpus, and labels whose every phrase
(`carry`, `drop`) is words of the earlier turns. A set whose shared data is missing is skipped
with the reason. Prints counts per set; exits 1 on any problem.

Usage: python eval/validate_sets.py [SETS_DIR]   (with the project installed, e.g. .venv/bin/python)
"""

import os
import re
import sys

from qa.errors import InvalidInput, MissingData
from qa.eval.sets import load_set
from qa.language import lexical
from qa.sources.ingest import discover

KEYS = ("id", "question", "answers", "doc_id", "evidence", "unanswerable", "history")
OPTIONAL = ("note",)  # free text: where a question comes from, or why it is unanswerable
TURN_KEYS = ("id", "question", "history", "doc_id", "carry", "drop")
POSSESSIVE = re.compile(r"['’]s$")


def check_history(hist, where, errors):
    if not isinstance(hist, list):
        errors.append(f"{where}: history must be a list")
        return
    for i, msg in enumerate(hist):
        ok = (
            isinstance(msg, dict)
            and set(msg) == {"role", "content"}
            and msg["role"] in ("user", "assistant")
            and isinstance(msg["content"], str)
            and msg["content"].strip()
        )
        if not ok:
            errors.append(f"{where}: bad history message #{i}: {msg!r}")


def has_keys(row, keys, where, errors):
    """Whether `row` has every one of `keys` (else an error); other keys than those and the
    OPTIONAL ones are errors too. Then id and question are non-empty strings."""
    missing = [k for k in keys if k not in row]
    if missing:
        errors.append(f"{where}: missing keys {missing}")
        return False
    extra = sorted(set(row) - set(keys) - set(OPTIONAL))
    if extra:
        errors.append(f"{where}: unexpected keys {extra}")
    if not isinstance(row["id"], str) or not row["id"]:
        errors.append(f"{where}: id must be a non-empty string")
    if not isinstance(row["question"], str) or not row["question"].strip():
        errors.append(f"{where}: question must be a non-empty string")
    return True


def check_row(row, where, docs, errors):
    if not has_keys(row, KEYS, where, errors):
        return
    if not isinstance(row.get("note", ""), str):
        errors.append(f"{where}: note must be a string")
    answers = row["answers"]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        errors.append(f"{where}: answers must be a list of strings")
        return
    if not isinstance(row["unanswerable"], bool):
        errors.append(f"{where}: unanswerable must be a bool")
        return
    check_history(row["history"], where, errors)
    if row["unanswerable"]:
        if answers or row["doc_id"] is not None or row["evidence"] is not None:
            errors.append(f"{where}: unanswerable needs answers=[], doc_id=null, evidence=null")
        return
    if not answers or not all(a.strip() for a in answers):
        errors.append(f"{where}: answerable question needs non-empty answers")
        return
    if len(set(answers)) != len(answers):
        errors.append(f"{where}: duplicate answers")
    doc_id, evidence = row["doc_id"], row["evidence"]
    if not isinstance(doc_id, str) or not isinstance(evidence, str) or not evidence.strip():
        errors.append(f"{where}: answerable needs string doc_id and evidence")
        return
    if doc_id not in docs:
        errors.append(f"{where}: doc_id {doc_id!r} is not a document of the corpus")
        return
    text = docs[doc_id]
    for a in answers:
        if a not in text:
            errors.append(f"{where}: answer {a!r} not verbatim in {doc_id}")
    if evidence not in text:
        errors.append(f"{where}: evidence not verbatim in {doc_id}")
    elif not any(a in evidence for a in answers):
        errors.append(f"{where}: no answer occurs inside the evidence")


def label_words(text):
    """Words as the rewrite measure compares them (qa.eval.rewrites): lower case, no 's."""
    return {POSSESSIVE.sub("", w) for w in lexical.words(text)}


def check_turn(row, where, docs, errors):
    """A conversation turn: keys and types, a history, its document, labels from the history."""
    if not has_keys(row, TURN_KEYS, where, errors):
        return
    if not row["history"]:
        errors.append(f"{where}: a turn needs the earlier turns in history")
        return
    check_history(row["history"], where, errors)
    if row["doc_id"] is not None and row["doc_id"] not in docs:
        errors.append(f"{where}: doc_id {row['doc_id']!r} is not a document of the corpus")
    carry, drop = row["carry"], row["drop"]
    phrases = [p for item in carry for p in ([item] if isinstance(item, str) else item)]
    ok = isinstance(carry, list) and all(
        isinstance(i, str) or (isinstance(i, list) and i) for i in carry
    )
    if not ok or not all(isinstance(p, str) and p.strip() for p in phrases):
        errors.append(f"{where}: carry must be a list of phrases or lists of phrases")
        return
    if not isinstance(drop, list) or not all(isinstance(w, str) and w.strip() for w in drop):
        errors.append(f"{where}: drop must be a list of words")
        return
    earlier = set()
    for msg in row["history"]:
        earlier |= label_words(msg["content"])
    for phrase in phrases + drop:
        if not label_words(phrase) <= earlier:
            errors.append(f"{where}: {phrase!r} is not words of the earlier turns")
    carried = set().union(*(label_words(p) for p in phrases)) if phrases else set()
    for word in drop:
        if label_words(word) & carried:
            errors.append(f"{where}: {word!r} is both to carry and to drop")


def objects(rows, errors):
    """(where, id, row) of each row that is a JSON object; the others, and repeated ids, are
    errors."""
    seen = set()
    for where, row in rows:
        if not isinstance(row, dict):
            errors.append(f"{where}: not a JSON object")
            continue
        rid = row.get("id")
        if rid in seen:
            errors.append(f"{where}: duplicate id {rid!r}")
        seen.add(rid)
        yield where, rid, row


def check_turns(rows, docs, errors):
    counts = {"follow-up": 0, "stands alone": 0, "total": 0}
    for where, rid, row in objects(rows, errors):
        before = len(errors)
        check_turn(row, f"{where} ({rid})", docs, errors)
        if len(errors) == before:
            counts["total"] += 1
            counts["follow-up" if row["carry"] else "stands alone"] += 1
    return counts


def corpus_texts(eval_set):
    """The corpus's documents by the id `qa index` gives them (files read raw, as written)."""
    files, _ = discover(eval_set.corpus)
    return {f.doc_id: f.path.read_text(encoding="utf-8") for f in files}


def check_set(set_dir, errors):
    """Counts of a set's questions, or None when its shared data is missing (skipped)."""
    name = os.path.basename(set_dir)
    counts = {"answerable": 0, "unanswerable": 0, "follow-up": 0, "total": 0}
    if not os.path.exists(os.path.join(set_dir, "README.md")):
        errors.append(f"{name}: missing README.md")
    try:
        eval_set = load_set(set_dir)
        eval_set.require(eval_set.corpus)
        docs = corpus_texts(eval_set)
        rows = list(eval_set.rows())
    except MissingData as exc:
        print(f"{name}: SKIPPED: {exc}")
        return None
    except (InvalidInput, ValueError) as exc:
        errors.append(f"{name}: {exc}")
        return counts
    if eval_set.is_conversation:
        counts = check_turns(rows, docs, errors)
        if counts["total"] == 0:
            errors.append(f"{name}: no valid turns")
        return counts
    for where, rid, row in objects(rows, errors):
        before = len(errors)
        check_row(row, f"{where} ({rid})", docs, errors)
        if len(errors) == before:
            counts["total"] += 1
            counts["unanswerable" if row["unanswerable"] else "answerable"] += 1
            if row["history"]:
                counts["follow-up"] += 1
    if counts["total"] == 0:
        errors.append(f"{name}: no valid questions")
    return counts


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    sets_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "sets")
    names = sorted(d for d in os.listdir(sets_dir) if os.path.isdir(os.path.join(sets_dir, d)))
    errors = []
    if not names:
        errors.append(f"no sets found in {sets_dir}")
    for name in names:
        c = check_set(os.path.join(sets_dir, name), errors)
        if c is None:
            continue
        if "stands alone" in c:
            print(
                f"{name}: {c['total']} valid conversation turns: {c['follow-up']} follow-ups, "
                f"{c['stands alone']} standing alone"
            )
            continue
        print(
            f"{name}: {c['total']} valid questions: {c['answerable']} answerable, "
            f"{c['unanswerable']} unanswerable, {c['follow-up']} follow-ups (with history)"
        )
    for e in errors:
        print("ERROR", e, file=sys.stderr)
    print("OK" if not errors else f"FAILED: {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
