"""Abstention policies of the rules and reader models, measured offline.

`qa eval` answers every question once per setting; trying a new reader or a new way to combine
it with the rules that way costs ~40 min on squad2-heldout. Here the expensive part is done once:

    python eval/reader_policies.py dump eval/sets/squad2-heldout --index index/eval-squad-dev \\
        --model models/reader --model /tmp/r6 --out /tmp/readings/squad2-heldout.jsonl

records, per question, the rules' decision and their best 8 sentences (coverage, whether a gold
answer is in them) with each model's reading of them. Then

    python eval/reader_policies.py table /tmp/readings/*.jsonl

prints, per set, the share of unanswerable questions abstained on and of answerable ones wrongly
abstained on: by the rules alone, and by the rules with each model's veto at `VETO_SWEEP`'s
thresholds, and the best veto, in 0.005 steps, at <= 5%, 10% and 20% wrong. (The veto was
tried in the runtime as QA_READER_VETO_PROB and lost; its code there is removed, its record
is in docs/reader.md.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def dump(set_dir: Path, index: Path, models: list[Path], out: Path) -> None:
    os.environ["QA_READER"] = "off"  # the rules answer; each model reads beside them
    from tqdm import tqdm

    from qa.answering import extractive as answering
    from qa.answering.reader import Reader
    from qa.config import get_settings
    from qa.engine import Engine
    from qa.eval.metrics import contains_answer
    from qa.eval.sets import load_questions, load_set
    from qa.language.question import Question

    engine = Engine(index)
    cache = get_settings().encoders.model_cache_dir
    readers = {m.name: Reader(m, onnx_cache=cache) for m in models}
    idf = answering.Idf(engine.snapshot())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    with tmp.open("w") as f:
        for q in tqdm(load_questions(load_set(set_dir)), desc=set_dir.name, unit="q"):
            res = engine.ask(q.question, history=q.messages())
            # the rules' best sentences, read once per model
            asked = Question.read(q.question, res.query)
            read = {
                name: answering.read_sentences(asked, res.passages, idf, r)
                for name, r in readers.items()
            }
            ranked = next(iter(read.values())).ranked
            cands = [
                {
                    "text": c.text,
                    "coverage": c.coverage,
                    "gold": bool(q.answers) and contains_answer(c.text, q.answers),
                    "readings": {
                        name: {"prob": rs.readings[i].prob, "null_prob": rs.readings[i].null_prob}
                        for name, rs in read.items()
                    },
                }
                for i, c in enumerate(ranked)
            ]
            row = {
                "id": q.id,
                "question": q.question,
                "unanswerable": q.unanswerable,
                "rules_abstained": res.abstained,
                "candidates": cands,
            }
            f.write(json.dumps(row) + "\n")
    tmp.replace(out)


def vetoed(row: dict, model: str, threshold: float) -> bool:
    """The rules abstain, or the reader gives the sentence they chose (their best) a
    probability below `threshold`."""
    if row["rules_abstained"] or not row["candidates"]:
        return True
    return row["candidates"][0]["readings"][model]["prob"] < threshold


def rates(rows: list[dict], abstains) -> tuple[float, float]:
    """(share of unanswerable questions abstained on, share of answerable ones)."""
    out = []
    for unanswerable in (True, False):
        flags = [abstains(r) for r in rows if r["unanswerable"] == unanswerable]
        out.append(sum(flags) / len(flags) if flags else float("nan"))
    return out[0], out[1]


VETO_SWEEP = (0.0, 0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4)  # thresholds shown
FINE_STEPS = tuple(round(0.005 * i, 3) for i in range(100))  # 0 to 0.495, for the best veto


def veto_sweep(rows: list[dict], model: str, thresholds: tuple[float, ...] | None = None):
    """The rules with `model`'s veto at each threshold (default: `VETO_SWEEP`)."""
    out = []
    for t in VETO_SWEEP if thresholds is None else thresholds:
        unans, wrong = rates(rows, lambda r, t=t: vetoed(r, model, t))
        out.append({"veto_prob": t, "abstain_unanswerable": unans, "wrong_abstain": wrong})
    return out


def _pair(point: dict) -> str:
    return f"{point['abstain_unanswerable']:.2f}/{point['wrong_abstain']:.3f}"


def table(paths: list[Path]) -> None:
    for path in paths:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        n_unans = sum(r["unanswerable"] for r in rows)
        print(f"\n{path.stem}: {len(rows)} questions, {n_unans} unanswerable")
        print("  abstained on unanswerable / wrongly on answerable")
        u, w = rates(rows, lambda r: r["rules_abstained"])
        print(f"  {'rules alone':24s} {u:.3f} / {w:.3f}")
        read = next((r["candidates"][0]["readings"] for r in rows if r["candidates"]), {})
        for model in sorted(read):
            points = veto_sweep(rows, model)
            print(f"  + veto by {model}")
            shown = [f"{p['veto_prob']:.2f}: {_pair(p)}" for p in points]
            print("    " + "  ".join(shown))
            fine = veto_sweep(rows, model, FINE_STEPS)
            for cap in (0.05, 0.10, 0.20):
                ok = [p for p in fine if p["wrong_abstain"] <= cap]
                if ok:
                    best = max(ok, key=lambda p: (p["abstain_unanswerable"], -p["wrong_abstain"]))
                    print(
                        f"    best at <= {cap:.0%} wrong: veto {best['veto_prob']:.3f}, "
                        f"{best['abstain_unanswerable']:.3f} / {best['wrong_abstain']:.3f}"
                    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="read one eval set's questions with each model")
    d.add_argument("set_dir", type=Path)
    d.add_argument("--index", type=Path, required=True)
    d.add_argument("--model", type=Path, action="append", required=True)
    d.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("table", help="compare the policies on dumped readings")
    t.add_argument("paths", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.set_dir, args.index, args.model, args.out)
    else:
        table(args.paths)


if __name__ == "__main__":
    main(sys.argv[1:])
