"""Compare two sets of `qa eval` reports record for record: did a change alter any answer?

Each folder holds one report folder per set (`qa eval eval/sets/SET --out BEFORE/SET`), made by
two trees on the same indexes (`--index index/eval-<corpus> --no-build`). Every record of each
set's `results.jsonl` is compared field by field, timings aside (keys ending in `_ms` or `_s`),
floats to six places; the differing records are listed with their before and after. Exits 1
when any record differs.

    python3 eval/compare_reports.py BEFORE AFTER [SET ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TIMING_KEYS = {"latency_ms", "timings_ms", "info"}


def comparable(value: Any) -> Any:
    """The value without its timings, floats rounded."""
    if isinstance(value, dict):
        return {
            k: comparable(v)
            for k, v in value.items()
            if k not in TIMING_KEYS and not k.endswith(("_ms", "_s"))
        }
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare_set(before: Path, after: Path) -> int:
    """Print how many records of one set differ, and the first few; return that count."""
    old, new = records(before / "results.jsonl"), records(after / "results.jsonl")
    changed = 0
    for a, b in zip(old, new, strict=False):
        ca, cb = comparable(a), comparable(b)
        if ca == cb:
            continue
        changed += 1
        if changed <= 5:
            keys = sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))
            print(f"   {a.get('id')}: {', '.join(keys)}")
            for k in keys:
                print(f"      {k}: {str(ca.get(k))[:150]}\n   -> {str(cb.get(k))[:150]}")
    changed += abs(len(old) - len(new))
    print(f"{before.name}: {len(old)} before, {len(new)} after, {changed} records differ")
    return changed


def main() -> None:
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    sets = sys.argv[3:] or sorted(p.name for p in before.iterdir() if p.is_dir())
    total = 0
    for name in sets:
        if not (before / name / "results.jsonl").exists():
            sys.exit(f"{before / name} has no results.jsonl")
        if not (after / name / "results.jsonl").exists():
            sys.exit(f"{after / name} has no results.jsonl")
        total += compare_set(before / name, after / name)
    print(f"records differing, all sets: {total}")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
