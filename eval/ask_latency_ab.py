"""`qa bench ask` in two source trees, side by side: did a change move the answer latency?

Runs each tree's own `qa bench ask` (its code, the same index, the same questions) in alternating
rounds, A B A B ..., so the machine's noise falls on both alike, and reports per round each
tree's p50 of `Engine.ask` (the default settings) and of its floor (one query encode + one FAISS
search), and the ratio B / A of the p50s, beside the ratio of the floors (what the noise alone
moved). A tree is a checkout of this repository (`git worktree add /tmp/before <commit>`).

    PYTHONPATH=. .venv/bin/python eval/ask_latency_ab.py /tmp/before . \
        --index index/eval-seed-news --set eval/sets/seed-news --rounds 3 --n 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def bench_once(tree: Path, index: Path, set_dir: Path, n: int, out: Path) -> dict[str, float]:
    """One `qa bench ask` with `tree`'s code; the default's p50 and the floor's, in ms."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, "-m", "qa.cli", "bench", "ask", "--index", str(index)]
    cmd += ["--set", str(set_dir), "--n", str(n), "--out", str(out)]
    subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True, text=True)
    result = json.loads((out / "ask.json").read_text())
    return {"ask_p50": result["ask_ms"]["p50"], "floor_p50": result["floor_ms"]["p50"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree_a", type=Path, help="the tree before (a checkout)")
    parser.add_argument("tree_b", type=Path, help="the tree after")
    parser.add_argument("--index", type=Path, required=True, help="index folder both read")
    parser.add_argument("--set", dest="set_dir", type=Path, default=Path("eval/sets/seed-news"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=60, help="questions per run")
    args = parser.parse_args()
    trees = {"A": args.tree_a.resolve(), "B": args.tree_b.resolve()}
    index, set_dir = args.index.resolve(), args.set_dir.resolve()
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            row: dict[str, float] = {}
            for name, tree in trees.items():
                got = bench_once(tree, index, set_dir, args.n, Path(tmp) / f"{name}{r}")
                row |= {f"{name}_{k}": v for k, v in got.items()}
            row["ratio"] = row["B_ask_p50"] / row["A_ask_p50"]
            row["floor_ratio"] = row["B_floor_p50"] / row["A_floor_p50"]
            rows.append(row)
            print(
                f"round {r + 1}: A ask p50 {row['A_ask_p50']:.1f} ms (floor "
                f"{row['A_floor_p50']:.1f}), B ask p50 {row['B_ask_p50']:.1f} ms (floor "
                f"{row['B_floor_p50']:.1f}); B/A {row['ratio']:.3f}, "
                f"floors {row['floor_ratio']:.3f}",
                flush=True,
            )
    ratios = [row["ratio"] for row in rows]
    floors = [row["floor_ratio"] for row in rows]
    print(
        f"median B/A ask p50 {statistics.median(ratios):.3f} "
        f"(rounds {min(ratios):.3f}..{max(ratios):.3f}); median B/A floor p50 "
        f"{statistics.median(floors):.3f} (rounds {min(floors):.3f}..{max(floors):.3f})"
    )


if __name__ == "__main__":
    main()
