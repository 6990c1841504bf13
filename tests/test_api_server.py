"""`qa serve` as a real process on a free loopback port, over real HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ui_support import child_env

KEY = "server-test-key"
FACT = b"The Glass Tower in Norrvik has 77 floors and was finished in 2011."


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start `qa serve` and wait until /health says it is ready; a port taken in the meantime
    gets another try."""
    for _attempt in range(3):
        port = free_port()
        cmd = [sys.executable, "-m", "qa.cli", "serve", "--index", str(work / "index")]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        with open(work / "server.log", "wb") as log:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300  # a slow, busy machine loading three models
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                health = httpx.get(f"{url}/health", timeout=5)
                if health.status_code == 200 and health.json()["ready"]:
                    return proc, url
                time.sleep(0.2)
            except httpx.TransportError:
                time.sleep(0.2)
        stop(proc)
        output = (work / "server.log").read_text()
        if "address already in use" not in output:
            break
    raise AssertionError(f"qa serve did not come up:\n{output}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`qa serve` on an empty index folder, with an API key; yields its base URL."""
    work = tmp_path_factory.mktemp("serve")
    env = child_env(QA_API_KEY=KEY, PYTHONUNBUFFERED="1")
    proc, url = start(work, env)
    try:
        yield url
    finally:
        stop(proc)
        assert "Application shutdown complete" in (work / "server.log").read_text()


def test_serve_upload_and_ask(server):
    health = httpx.get(f"{server}/health").json()
    assert health["ok"] is False and health["version"] is None  # no index yet, still healthy

    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server, headers=auth, timeout=30) as http:
        assert httpx.post(f"{server}/ask", json={"question": "How tall?"}).status_code == 401
        r = http.post("/ask", json={"question": "How many floors has the Glass Tower?"})
        assert r.status_code == 503 and "qa index" in r.json()["message"]

        r = http.post("/documents", files=[("files", ("tower.txt", FACT, "text/plain"))])
        assert r.status_code == 202
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while (job := http.get(f"/jobs/{job_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["status"] == "done", job

        body = http.post("/ask", json={"question": "How many floors has the Glass Tower?"}).json()
        assert "77 floors" in body["answer"]
        (cite,) = [c for c in body["citations"] if "77 floors" in c["quote"]]
        text = http.get(f"/documents/{cite['doc_id']}").json()["text"]
        assert text[cite["start"] : cite["end"]] == cite["quote"]
        assert httpx.get(f"{server}/health").json()["documents"] == 1
