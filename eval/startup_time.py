"""How long the service takes to start, and whether the first upload waits for a model.

For each CPU kind named (`QA_CPU`: amx = torch-bf16 for batches as on an Intel AMX CPU, avx2 =
onnx for both, host = this machine's choice), copies INDEX into a temporary folder, starts
`qa serve` in a fresh process on a free loopback port and reports, in seconds:

    health_answers   from the start until /health answers at all (it says "ready": false first)
    ready            from the start until /health says "ready": true (every model loaded)
    first_upload     from POST /documents of a three-sentence .txt until its job is done
    qa_up            from starting `qa up` (the service and the chat UI) until it prints its URLs

    PYTHONPATH=. .venv/bin/python eval/startup_time.py index/eval-seed-news amx avx2
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

NOTE = "The Quillton festival takes place every March. In 2025 it attracted 12,400 visitors.\n" * 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _poll(url: str, done, timeout: float = 600.0):
    """GET `url` until `done(json)` holds; the JSON then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = httpx.get(url, timeout=5).json()
            if done(body):
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not get there in {timeout:.0f} s")


def measure(index: Path, cpu: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="qa-startup-"))
    shutil.copytree(index, work / "index")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")} | {"QA_CPU": cpu}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--index", str(work / "index")]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, cwd=work,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _poll(f"{url}/health", lambda h: True)
        answers = time.monotonic() - t0
        health = _poll(f"{url}/health", lambda h: h["ready"] or h.get("error"))
        if health.get("error"):
            raise RuntimeError(health["error"])
        ready = time.monotonic() - t0
        t1 = time.monotonic()
        files = {"files": ("quillton.txt", NOTE.encode(), "text/plain")}
        job = httpx.post(f"{url}/documents", files=files, timeout=60).json()
        done = _poll(f"{url}/jobs/{job['id']}", lambda j: j["status"] in ("done", "failed"))
        upload = time.monotonic() - t1
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "cpu": cpu,
        "runtimes": health["embed_backend"],
        "health_answers_s": round(answers, 2),
        "ready_s": round(ready, 2),
        "first_upload_s": round(upload, 2),
        "job": done["status"],
    }


def measure_up(index: Path, cpu: str) -> float:
    """Seconds from starting `qa up` until it prints "qa is up" (after the service is ready)."""
    work = Path(tempfile.mkdtemp(prefix="qa-up-"))
    shutil.copytree(index, work / "index")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")} | {"QA_CPU": cpu}
    cmd = [sys.executable, "-m", "qa.cli", "up", "--index", str(work / "index")]
    cmd += ["--api-port", str(free_port()), "--ui-port", str(free_port())]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        for line in proc.stdout or ():
            if "qa is up" in line:
                return round(time.monotonic() - t0, 2)
        raise RuntimeError(f"qa up exited with code {proc.wait()} before it was up")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index", type=Path, help="an index folder to start on (copied)")
    parser.add_argument("cpus", nargs="+", choices=("host", "amx", "avx2"))
    args = parser.parse_args()
    for cpu in args.cpus:
        print(measure(args.index, cpu) | {"qa_up_s": measure_up(args.index, cpu)}, flush=True)


if __name__ == "__main__":
    main()
