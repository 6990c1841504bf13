"""Do the OpenAI-compatible and MCP front ends answer exactly as POST /ask does, and what do
they add to its latency?

Indexes an eval set's corpus into a temporary folder, starts `qa serve` (with an API key) on a
free loopback port and `qa mcp` over stdio, then asks every question of the set (with its
history), in extractive mode, through each channel in turn, the order rotated per question:

    ask          POST /ask (httpx)
    v1           POST /v1/chat/completions (httpx, the bare protocol)
    v1-openai    the same through the official `openai` client
    v1-stream    the same with stream=True, until the client has read `data: [DONE]`
    mcp-http     the `ask` tool at /mcp, through the `mcp` SDK's client (one session)
    mcp-stdio    the `ask` tool of `qa mcp`, through the SDK's client (one session)

and prints, per channel, how many answers equal /ask's (same answer text, same citations) and
the client-side latency: median, 90th percentile, and the median of the paired difference to
/ask on the same question and round.

    PYTHONPATH=. .venv/bin/python eval/protocol_parity.py [eval/sets/seed-news] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from qa.eval.sets import build_index, load_questions, load_set

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ["ask", "v1", "v1-openai", "v1-stream", "mcp-http", "mcp-stdio"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(index_dir: Path, key: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(QA_API_KEY=key, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--index", str(index_dir)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd + ["--port", str(port)], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=1).json().get("ok"):
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"qa serve did not come up:\n{log.read_text()}")


def same(got: dict, expected: dict) -> bool:
    return got["answer"] == expected["answer"] and got["citations"] == expected["citations"]


async def run(set_dir: Path, rounds: int) -> None:
    questions = load_questions(set_dir)
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        build_index(load_set(set_dir), index_dir)
        key = secrets.token_hex(8)
        proc, url = serve(index_dir, key, Path(tmp) / "serve.log")
        auth = {"Authorization": f"Bearer {key}"}
        stdio = StdioServerParameters(
            command=sys.executable,
            args=["-m", "qa.cli", "mcp", "--index", str(index_dir)],
            env={"PYTHONPATH": str(ROOT)},
        )
        try:
            async with (
                httpx2.AsyncClient(headers=auth, timeout=120) as h2,
                Client(streamable_http_client(f"{url}/mcp", http_client=h2)) as mcp_http,
                Client(stdio, read_timeout_seconds=120) as mcp_stdio,
            ):
                http = httpx.Client(base_url=url, headers=auth, timeout=120)
                oai = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)

                def v1_body(messages: list[dict]) -> dict:
                    return {"model": "qa-extractive", "messages": messages}

                async def ask_via(channel: str, q: Any) -> dict:
                    history = [t.model_dump() for t in q.history]
                    messages = [*history, {"role": "user", "content": q.question}]
                    args = {"question": q.question, "history": history}
                    if channel == "ask":
                        return http.post("/ask", json=args).json()
                    if channel == "v1":
                        reply = http.post("/v1/chat/completions", json=v1_body(messages)).json()
                        message = reply["choices"][0]["message"]
                        return {"answer": message["content"], "citations": message["citations"]}
                    if channel == "v1-openai":
                        message = (
                            oai.chat.completions.create(model="qa-extractive", messages=messages)
                            .choices[0]
                            .message
                        )
                        return {"answer": message.content, "citations": message.citations}
                    if channel == "v1-stream":
                        chunks = list(
                            oai.chat.completions.create(
                                model="qa-extractive", messages=messages, stream=True
                            )
                        )
                        deltas = [c.choices[0].delta for c in chunks]
                        cited = [d.citations for d in deltas if d.model_extra]
                        text = "".join(d.content or "" for d in deltas)
                        return {"answer": text, "citations": cited[0] if cited else None}
                    client = mcp_http if channel == "mcp-http" else mcp_stdio
                    result = await client.call_tool("ask", args)
                    return result.structured_content or {"answer": None, "citations": None}

                for q in questions[:3]:  # warm every path (the stdio server loads its model)
                    for channel in CHANNELS:
                        await ask_via(channel, q)
                times: dict[str, list[float]] = {c: [] for c in CHANNELS}
                added: dict[str, list[float]] = {c: [] for c in CHANNELS}
                equal = {c: 0 for c in CHANNELS}
                for r in range(rounds):
                    for i, q in enumerate(questions):
                        turn = (i + r) % len(CHANNELS)
                        order = CHANNELS[turn:] + CHANNELS[:turn]
                        got: dict[str, dict] = {}
                        took: dict[str, float] = {}
                        for channel in order:
                            t0 = time.perf_counter()
                            got[channel] = await ask_via(channel, q)
                            took[channel] = (time.perf_counter() - t0) * 1e3
                        for channel in CHANNELS:
                            times[channel].append(took[channel])
                            added[channel].append(took[channel] - took["ask"])
                            if r == 0:
                                equal[channel] += same(got[channel], got["ask"])
                http.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    n = len(questions)
    print(f"{set_dir}: {n} questions, {rounds} round(s), extractive mode")
    print(f"{'channel':<11} {'= /ask':>8} {'p50 ms':>8} {'p90 ms':>8} {'added p50 ms':>13}")
    for c in CHANNELS:
        p50 = statistics.median(times[c])
        p90 = statistics.quantiles(times[c], n=10)[-1]
        plus = statistics.median(added[c])
        print(f"{c:<11} {equal[c]:>4}/{n:<3} {p50:>8.1f} {p90:>8.1f} {plus:>13.1f}")
    print(json.dumps({"equal": equal, "n": n}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set_dir", nargs="?", type=Path, default=ROOT / "eval/sets/seed-news")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.set_dir, args.rounds))


if __name__ == "__main__":
    main()
