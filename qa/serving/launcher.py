"""`qa up`: the HTTP service and the chat UI as two child processes, started and stopped as one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from qa.errors import QAError
from qa.store import folder as store

HOST = "127.0.0.1"  # both listen on loopback only; `qa serve --host` exposes the service
# three models from a cold disk on a busy machine; a child that dies fails it at once
START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 10.0

Say = Callable[[str], None]


class LaunchError(QAError):
    """A process of `qa up` could not start or did not come up."""


def ui_app_path() -> Path:
    """ui/app.py beside the qa package (a checkout or an editable install), whatever the CWD."""
    path = Path(__file__).resolve().parents[2] / "ui" / "app.py"
    if not path.is_file():
        raise LaunchError(
            f"the chat UI is not at {path}; run `qa up` from a checkout of the repository "
            "installed with `pip install -e .` (or `make run`)"
        )
    return path


def service_command(index_dir: Path, port: int) -> list[str]:
    cli = [sys.executable, "-m", "qa.cli", "serve"]
    return cli + ["--index", str(index_dir), "--host", HOST, "--port", str(port)]


def ui_command(app: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app)] + [
        "--server.headless", "true",
        "--server.address", HOST,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def port_free(port: int) -> bool:
    """Whether nothing listens on the port (connections closing in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and tornado do
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    """Whether `url` answers 200 and, where it says whether it is ready (the service's /health
    while its models load), that it is; a service that could not start is an error."""
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    if isinstance(body, dict) and body.get("error"):
        raise LaunchError(f"{url}: {body['error']}")
    return not isinstance(body, dict) or body.get("ready", True) is not False


def wait_until_up(
    url: str, procs: dict[str, subprocess.Popen], timeout: float = START_TIMEOUT_S
) -> None:
    """Poll `url` until it answers 200 (and says it is ready, where it says); fail early when a
    child process dies."""
    deadline = time.monotonic() + timeout
    while not _answers(url):
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise LaunchError(
                    f"the {name} exited with code {proc.returncode} before it was up; "
                    "its messages above say why"
                )
        if time.monotonic() > deadline:
            raise LaunchError(f"nothing answered at {url} after {timeout:.0f} s")
        time.sleep(0.3)


def stop(procs: dict[str, subprocess.Popen], timeout: float = STOP_TIMEOUT_S) -> None:
    """Ask every child to stop (SIGTERM), then kill what is still running after `timeout`."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def up(index_dir: Path, api_port: int = 8000, ui_port: int = 8501, say: Say = print) -> int:
    """Run the service and the UI until Ctrl-C (exit code 0) or until one of them dies (1)."""
    index_dir = Path(index_dir).resolve()
    app = ui_app_path()
    for port, option in ((api_port, "--api-port"), (ui_port, "--ui-port")):
        if not port_free(port):
            raise LaunchError(
                f"port {port} on {HOST} is in use (is `qa up` or `qa serve` running already?); "
                f"stop it or choose another port with {option}"
            )
    if store.current_version(index_dir) is None:
        say(
            f"warning: no index in {index_dir} yet; build one with `make run` (the sample "
            f"corpora) or `qa index FOLDER --index {index_dir}`, or upload documents in the UI"
        )
    api_url = f"http://{HOST}:{api_port}"
    ui_url = f"http://{HOST}:{ui_port}"
    env = {**os.environ, "QA_API_URL": api_url}
    procs: dict[str, subprocess.Popen] = {}
    # Ctrl-C and SIGTERM both stop the pair, even where a shell started us with SIGINT ignored.
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in stop_signals}
    try:
        procs["qa service"] = subprocess.Popen(
            service_command(index_dir, api_port), env=env, stdin=subprocess.DEVNULL
        )
        procs["chat UI"] = subprocess.Popen(
            ui_command(app, ui_port), env=env, stdin=subprocess.DEVNULL
        )
        say("starting: the service loads its models and the index…")
        wait_until_up(f"{api_url}/health", procs)
        wait_until_up(f"{ui_url}/_stcore/health", procs)
        say(
            f"\nqa is up (index {index_dir}):\n"
            f"  chat UI       {ui_url}\n"
            f"  HTTP service  {api_url}  (API docs: {api_url}/docs)\n"
            "Press Ctrl-C to stop both."
        )
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    say(f"the {name} stopped (exit code {proc.returncode}); stopping the other")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("\nstopping the qa service and the chat UI…")
        return 0
    finally:
        stop(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
