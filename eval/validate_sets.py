#!/usr/bin/env python3
"""Validate every eval set under eval/sets/ (stdlib only).

Checks: questions.jsonl is well-formed JSON lines with the required keys and types; ids are
unique within a set; answerable questions have a doc_id that exists under corpus/, every answer
and the evidence occur verbatim in that document, and at least one answer occurs in the
evidence; unanswerable questions have answers == [], doc_id == null and evidence == null;
history is a list of {"role": "user"|"assistant", "content": str}.
Prints counts per set; exits 1 on any problem.

Usage: python3 eval/validate_sets.py [SETS_DIR]
"""

import json
import os
import sys

KEYS = ("id", "question", "answers", "doc_id", "evidence", "unanswerable", "history")
OPTIONAL = ("note",)  # free text: where a question comes from, or why it is unanswerable


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


def check_row(row, where, set_dir, docs, errors):
    missing = [k for k in KEYS if k not in row]
    if missing:
        errors.append(f"{where}: missing keys {missing}")
        return
    extra = sorted(set(row) - set(KEYS) - set(OPTIONAL))
    if extra:
        errors.append(f"{where}: unexpected keys {extra}")
    if not isinstance(row.get("note", ""), str):
        errors.append(f"{where}: note must be a string")
    if not isinstance(row["id"], str) or not row["id"]:
        errors.append(f"{where}: id must be a non-empty string")
    if not isinstance(row["question"], str) or not row["question"].strip():
        errors.append(f"{where}: question must be a non-empty string")
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
    path = os.path.join(set_dir, "corpus", doc_id)
    if doc_id not in docs:
        if not os.path.isfile(path):
            errors.append(f"{where}: doc_id {doc_id!r} not found in corpus/")
            return
        with open(path, encoding="utf-8") as f:
            docs[doc_id] = f.read()
    text = docs[doc_id]
    for a in answers:
        if a not in text:
            errors.append(f"{where}: answer {a!r} not verbatim in {doc_id}")
    if evidence not in text:
        errors.append(f"{where}: evidence not verbatim in {doc_id}")
    elif not any(a in evidence for a in answers):
        errors.append(f"{where}: no answer occurs inside the evidence")


def check_set(set_dir, errors):
    name = os.path.basename(set_dir)
    for need in ("corpus", "questions.jsonl", "README.md"):
        if not os.path.exists(os.path.join(set_dir, need)):
            errors.append(f"{name}: missing {need}")
    qpath = os.path.join(set_dir, "questions.jsonl")
    counts = {"answerable": 0, "unanswerable": 0, "follow-up": 0, "total": 0}
    if not os.path.isfile(qpath):
        return counts
    seen, docs = set(), {}
    with open(qpath, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            where = f"{name}:{n}"
            if not line.strip():
                errors.append(f"{where}: blank line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"{where}: invalid JSON ({e})")
                continue
            if not isinstance(row, dict):
                errors.append(f"{where}: not a JSON object")
                continue
            rid = row.get("id")
            if rid in seen:
                errors.append(f"{where}: duplicate id {rid!r}")
            seen.add(rid)
            before = len(errors)
            check_row(row, f"{where} ({rid})", set_dir, docs, errors)
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
