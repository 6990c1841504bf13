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


def wait_for(http: httpx.Client, job_id: str, done, timeout: float = 300.0) -> dict:
    """Poll GET /jobs/{id} until `done(job)` holds; the job then."""
    deadline = time.monotonic() + timeout
    while not done(job := http.get(f"/jobs/{job_id}").json()):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_an_accepted_upload_survives_kill_9(tmp_path):
    """Killed (SIGKILL) while one upload is being embedded and another waits, the service
    finishes both at its next start, and answers GET /jobs/{id} for them."""
    env = child_env(PYTHONUNBUFFERED="1")
    # Long enough (about 200 chunks) that the kill lands while it is being embedded.
    towers = " ".join(
        f"Tower {i} of the Selvik estate has {i * 7 + 3} windows and {i % 9 + 2} lifts."
        for i in range(3000)
    ).encode()
    proc, url = start(tmp_path, env)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            first = http.post("/documents", files=[("files", ("towers.txt", towers))])
            second = http.post("/documents", files=[("files", ("tower.txt", FACT))])
            assert first.status_code == second.status_code == 202, (first.text, second.text)
            first_id, second_id = first.json()["id"], second.json()["id"]
            running = wait_for(http, first_id, lambda j: j["stage"] == "embedding")
            assert running["status"] == "running" and running["done"] < running["total"]
            assert http.get(f"/jobs/{second_id}").json()["status"] == "queued"
        proc.kill()
        proc.wait(timeout=20)
    finally:
        stop(proc)
    incoming = tmp_path / "index" / "uploads" / ".incoming"
    assert sorted(p.name for p in incoming.iterdir()) == sorted([first_id, second_id])

    proc, url = start(tmp_path, env)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            for job_id, name in ((first_id, "towers.txt"), (second_id, "tower.txt")):
                job = wait_for(http, job_id, lambda j: j["status"] in ("done", "failed"))
                assert job["status"] == "done", job
                assert job["files"] == [{"filename": name, "status": "added", "error": None}]
            assert http.get("/health").json()["documents"] == 2
            floors = http.post("/ask", json={"question": "How many floors has the Glass Tower?"})
            assert "77 floors" in floors.json()["answer"]
            windows = http.post(
                "/ask", json={"question": "How many windows has Tower 1234 of the Selvik estate?"}
            )
            assert "8641 windows" in windows.json()["answer"], windows.json()
        assert not list(incoming.iterdir())
    finally:
        stop(proc)
