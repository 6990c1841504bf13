"""Helpers for the UI tests: free ports and real child processes that are always stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from qa.serving.launcher import LaunchError, stop, wait_until_up
from tests.conftest import ROOT


def free_port() -> int:
    """A loopback port nobody listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """This environment without a QA_ setting that could point the children elsewhere (but with
    the CPU kind the run pretends, QA_CPU), and with this checkout first on the path (children
    run in a tmp folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") or k == "QA_CPU"}
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path, **extra}


@contextmanager
def running(
    cmd: Sequence[str],
    ready_urls: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
) -> Iterator[subprocess.Popen]:
    """Run `cmd` until the block ends; fail the test with its log if `ready_urls` never answer.

    It runs in the log's folder (a test's tmp folder) unless told otherwise, so that no .env of
    the developer's is read."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env or child_env(), cwd=cwd or log.parent,
        )  # fmt: skip
        try:
            for url in ready_urls:
                wait_ready(url, proc, log, timeout)
            yield proc
        finally:
            stop({"process": proc})


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    """Wait until `url` answers 200; fail the test with the process's log if it never does."""
    try:
        wait_until_up(url, {"process": proc}, timeout)
    except LaunchError as exc:
        pytest.fail(f"{exc}\n--- {log} ---\n{log.read_text(errors='replace')[-4000:]}")


def index_corpus(index_dir: Path, embedder) -> None:
    """Build the tests' corpus' index, e.g. into a folder a starting service already watches."""
    from qa.indexing import index_paths
    from tests.conftest import CORPUS

    report = index_paths([CORPUS], index_dir, embedder)
    assert report.ok and report.n_chunks > 0


def wait_for_index(base_url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until the service at `base_url` is up and has loaded an index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base_url}/health", timeout=5).json().get("ok"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{base_url} did not come up with an index (exit code {proc.poll()})")
