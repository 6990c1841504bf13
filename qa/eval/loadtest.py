"""`qa bench serve`: many concurrent clients against a running `qa serve`, over loopback.

The load comes from this process (asyncio + httpx), the service runs in another one: either one
given by `--url`, or a `qa serve` this bench starts on a free loopback port and stops afterwards.
Requests are bounded in count and time. The in-process `Engine.ask` latency of the same questions
is measured in the same run, before the load, as the floor the service adds its overhead to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from qa.eval.local_llm import free_port
from qa.eval.metrics import percentile
from qa.eval.report import markdown_table, run_info
from qa.eval.sets import EvalQuestion

MAX_REQUESTS = 200_000  # a hard bound whatever the duration
TARGET_RPS_RATIO = 3.0  # requests/s over the torch, unbatched service in the same run, at least
TARGET_P95_MS = 250.0


# The reference side of the same run: today's pipeline on PyTorch fp32, one encode per question.
BASELINE_ENV = {"QA_EMBED_BACKEND": "torch", "QA_QUERY_BATCH_SIZE": "1"}


@contextlib.contextmanager
def running_service(
    index_dir: Path, timeout_s: float = 120.0, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Start `qa serve` on a free loopback port (with `env` added); yield its URL and process
    id; stop it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--index", str(index_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"qa serve exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).json().get("ok"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"qa serve did not answer /health within {timeout_s:.0f} s")
            time.sleep(0.3)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _drive(
    url: str,
    bodies: Sequence[dict],
    clients: int,
    seconds: float,
    headers: dict[str, str],
) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers=headers) as http:

        async def client(offset: int) -> None:
            nonlocal sent
            i = offset
            while time.perf_counter() < stop_at and sent < MAX_REQUESTS:
                sent += 1
                body = bodies[i % len(bodies)]
                i += clients
                t0 = time.perf_counter()
                try:
                    response = await http.post("/ask", json=body)
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                        continue
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append((time.perf_counter() - t0) * 1e3)

        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def in_process_ask_ms(
    index_dir: Path, questions: Sequence[EvalQuestion], top_k: int
) -> list[float]:
    """`Engine.ask` latency of the same questions, one at a time, warm."""
    from qa.engine import Engine

    engine = Engine(index_dir)
    for q in questions[:3]:
        engine.ask(q.question, q.messages(), top_k)
    timings = []
    for q in questions:
        t0 = time.perf_counter()
        engine.ask(q.question, q.messages(), top_k)
        timings.append((time.perf_counter() - t0) * 1e3)
    return timings


def bench_serve(
    index_dir: Path,
    questions: Sequence[EvalQuestion],
    url: str | None = None,
    clients: int = 20,
    seconds: float = 30.0,
    top_k: int = 5,
    api_key: str | None = None,
    baseline: bool = True,
) -> dict[str, Any]:
    """Requests/s, latency percentiles, errors and peak RSS under `clients` concurrent askers;
    with `baseline` (and no `url`), the same against a torch, unbatched service, same run."""
    questions = list(questions)
    bodies = [{"question": q.question, "history": q.messages(), "top_k": top_k} for q in questions]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    floor = in_process_ask_ms(index_dir, questions, top_k)
    load = (bodies, clients, seconds, headers)
    result = {
        "bench": "serve",
        "info": run_info()
        | {"index_dir": str(index_dir), "url": url or "started by the bench", "top_k": top_k},
        "clients": clients,
        **_load(index_dir, url, load, None),
        "in_process_ask_ms": {p: percentile(floor, q) for p, q in (("p50", 50), ("p95", 95))},
    }
    if baseline and url is None:
        base = _load(index_dir, None, load, BASELINE_ENV)
        result["baseline"] = base | {"env": BASELINE_ENV}
        ratio = result["requests_per_s"] / base["requests_per_s"] if base["requests_per_s"] else 0
        result["ratio_to_baseline"] = round(ratio, 2)
        result["meets"] = {
            "ratio": ratio >= TARGET_RPS_RATIO,
            "p95": (result["latency_ms"]["p95"] or 1e9) < TARGET_P95_MS,
            "errors": result["errors"] == 0,
        }
    return result


def _load(
    index_dir: Path, url: str | None, load: tuple, env: dict[str, str] | None
) -> dict[str, Any]:
    bodies, clients, seconds, headers = load
    with contextlib.ExitStack() as stack:
        pid: int | None = None
        if url:
            target = url
        else:
            target, pid = stack.enter_context(running_service(index_dir, env=env))
        health = httpx.get(f"{target}/health", headers=headers, timeout=10).json()
        warm = asyncio.run(_drive(target, bodies[:5], 1, 2.0, headers))
        latencies, errors, elapsed = asyncio.run(_drive(target, bodies, clients, seconds, headers))
        rss = None if pid is None else peak_rss_mb(pid)
    return {
        "embed_backend": health.get("embed_backend"),
        "seconds": round(elapsed, 2),
        "requests": len(latencies) + len(errors),
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "requests_per_s": round(len(latencies) / elapsed, 2) if elapsed else 0.0,
        "latency_ms": {
            p: percentile(latencies, q) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))
        },
        "peak_rss_mb": rss,
        "warmup_requests": len(warm[0]),
    }


def peak_rss_mb(pid: int) -> float | None:
    """The most resident memory process `pid` has had (Linux VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def format_serve(r: dict[str, Any]) -> str:
    lat, floor = r["latency_ms"], r["in_process_ask_ms"]
    rows = [
        [
            f"HTTP /ask under load ({r['embed_backend']}, micro-batched as configured)",
            f"{lat['p50']:.1f}",
            f"{lat['p95']:.1f}",
            f"{lat['p99']:.1f}",
        ],
        ["in-process Engine.ask, one at a time", f"{floor['p50']:.1f}", f"{floor['p95']:.1f}", ""],
    ]
    lines = []
    if "baseline" in r:
        b = r["baseline"]
        bl = b["latency_ms"]
        rows.append(
            [
                "HTTP /ask, baseline: torch, no micro-batching",
                f"{bl['p50']:.1f}",
                f"{bl['p95']:.1f}",
                f"{bl['p99']:.1f}",
            ]
        )
        lines = [
            f"baseline (same run, {b['env']}): {b['requests_per_s']} requests/s, "
            f"errors {b['errors']}, peak RSS {_mb(b['peak_rss_mb'])}",
            f"requests/s over baseline: {r['ratio_to_baseline']}x "
            f"(target >= {TARGET_RPS_RATIO} {'(ok)' if r['meets']['ratio'] else '(MISSED)'}); "
            f"p95 target < {TARGET_P95_MS:.0f} ms {'(ok)' if r['meets']['p95'] else '(MISSED)'}",
        ]
    return "\n".join(
        [
            f"qa bench serve: {r['clients']} concurrent clients for {r['seconds']} s against "
            f"{r['info']['url']} ({r['info']['index_dir']}), top_k {r['info']['top_k']}",
            f"{r['info']['created_at']}, commit {r['info']['commit']}, "
            f"{r['info']['machine']}, load average {r['info']['load_avg_1_5_15']}",
            "",
            f"requests {r['requests']}, ok {r['ok']}, errors {r['errors']} (must be 0), "
            f"throughput {r['requests_per_s']} requests/s, peak RSS {_mb(r['peak_rss_mb'])}",
            *lines,
            "",
            markdown_table(["latency (ms)", "p50", "p95", "p99"], rows),
        ]
        + ([f"first errors: {r['error_samples']}"] if r["errors"] else [])
    )


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MB"
