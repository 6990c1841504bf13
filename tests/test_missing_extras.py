"""Milvus and Ray are extras (`pip install 'qa[milvus]'`, `'qa[ray]'`): without one, asking for
it is one line naming the extra to install, from the library, the CLI and the service, never an
ImportError. The missing package is simulated: its modules are hidden from `import`."""

from __future__ import annotations

import sys
import time

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qa.cli import app
from qa.config import Settings
from qa.errors import InvalidInput, MissingExtra
from qa.store.opening import open_store
from tests.conftest import CORPUS, FakeEmbedder

MILVUS_LINE = "needs the milvus extra: pip install 'qa[milvus]'"
RAY_LINE = "needs the ray extra: pip install 'qa[ray]'"


def hide(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """Make `import package` (and any of its modules) fail as if it were not installed."""
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            monkeypatch.delitem(sys.modules, name)
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)  # None: import raises ImportError


def test_the_milvus_store_without_its_extra_is_one_clear_error(monkeypatch, tmp_path):
    hide(monkeypatch, "pymilvus", "milvus_lite")
    settings = Settings(_env_file=None, store="milvus", milvus_uri=str(tmp_path / "m.db"))
    with pytest.raises(MissingExtra) as caught:
        open_store(None, settings)
    assert isinstance(caught.value, InvalidInput) and caught.value.extra == "milvus"
    assert str(caught.value) == f"The Milvus store (QA_STORE=milvus) {MILVUS_LINE}"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_milvus_lite_file_without_milvus_lite_names_the_extra(monkeypatch, tmp_path):
    pytest.importorskip("pymilvus", reason="needs the milvus extra: pip install 'qa[milvus]'")
    hide(monkeypatch, "milvus_lite")  # pymilvus alone reaches a server, not a local file
    uri = str(tmp_path / "m.db")
    settings = Settings(_env_file=None, store="milvus", milvus_uri=uri)
    with pytest.raises(MissingExtra, match=f"A Milvus Lite file \\(QA_MILVUS_URI={uri}\\)"):
        open_store(None, settings)


def test_qa_index_says_which_extra_to_install(monkeypatch, tmp_path):
    hide(monkeypatch, "pymilvus", "milvus_lite", "ray")
    runner = CliRunner()
    milvus = runner.invoke(app, ["index", str(CORPUS), "--milvus-uri", str(tmp_path / "m.db")])
    assert milvus.exit_code == 1 and "Traceback" not in milvus.output
    assert milvus.output.strip() == f"error: The Milvus store (QA_STORE=milvus) {MILVUS_LINE}"
    ray = runner.invoke(app, ["index", str(CORPUS), "--index", str(tmp_path / "ix"), "--ray"])
    assert ray.exit_code == 1 and "Traceback" not in ray.output
    assert ray.output.strip() == f"error: Embedding with Ray (qa index --ray) {RAY_LINE}"
    assert not (tmp_path / "ix").exists()  # said before any work


def test_ray_embedding_without_its_extra_is_one_clear_error(monkeypatch):
    from qa.encoders.ray import RayEmbedder, start_ray

    hide(monkeypatch, "ray")
    with pytest.raises(MissingExtra, match=r"qa index --ray\) needs the ray extra"):
        RayEmbedder(FakeEmbedder())
    with pytest.raises(MissingExtra, match=r"pip install 'qa\[ray\]'"):
        start_ray()


def test_the_service_reports_the_missing_extra_on_health(monkeypatch, tmp_path):
    hide(monkeypatch, "pymilvus", "milvus_lite")
    from qa.serving.app import create_app

    settings = Settings(
        _env_file=None, store="milvus", milvus_uri=str(tmp_path / "m.db"), api_key=None
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while True:
            health = client.get("/health").json()
            if health["error"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not health["ok"] and MILVUS_LINE in health["error"]
        asked = client.post("/ask", json={"question": "How long is the ferry crossing?"})
        assert asked.status_code == 503 and MILVUS_LINE in asked.text
