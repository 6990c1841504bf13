"""Start-up: the service loads every model it will use before it says it is ready, answers
/health while it loads, and `qa up` prints its URLs only once the service is ready."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from qa.answering.reader import Pair, Reading
from qa.config import Settings
from qa.encoders.embedding import SplitEmbedder
from qa.engine import Engine
from qa.indexing import index_paths
from qa.serving.app import create_app
from qa.serving.launcher import LaunchError, wait_until_up
from tests.conftest import FakeEmbedder


class Recording(FakeEmbedder):
    """A runtime that records what it embedded and can be held at its first call."""

    def __init__(self, backend: str, hold: threading.Event | None = None) -> None:
        super().__init__()
        self.backend, self.hold = backend, hold

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if self.hold is not None:
            assert self.hold.wait(60)
        return super().embed_batch(texts)


class RecordingReader:
    def __init__(self) -> None:
        self.questions: list[str] = []

    def read(self, question: str, pairs: Sequence[Pair]) -> list[Reading]:
        self.questions.append(question)
        return [Reading(prob=0.0, span=None, span_prob=0.0) for _ in pairs]


@pytest.fixture
def index_dir(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("The ledger lists one crate of apples. " * 20)
    index_paths([tmp_path / "docs"], tmp_path / "index", FakeEmbedder())
    return tmp_path / "index"


def test_start_up_loads_both_encoder_runtimes_and_the_reader(index_dir):
    """A split encoder (torch-bf16 for uploads on an AMX CPU) loads both halves at start, so the
    first upload never waits for PyTorch and the model."""
    batches, queries = Recording("fake-batches"), Recording("fake-queries")
    reader = RecordingReader()
    engine = Engine(
        index_dir, embedder=SplitEmbedder(batches, queries), reader=reader, settings=Settings()
    )
    with TestClient(create_app(Settings(), engine=engine)) as client:
        assert client.get("/health").json()["ready"] is True
    assert batches.embedded and queries.embedded and reader.questions


def test_health_answers_while_the_models_load_and_routes_wait(index_dir):
    hold = threading.Event()
    embedder = Recording("fake", hold=hold)
    engine = Engine(index_dir, embedder=embedder, reader=RecordingReader(), settings=Settings())
    with TestClient(create_app(Settings(), engine=engine, background=True)) as client:
        loading = client.get("/health").json()
        assert loading["ready"] is False and loading["ok"] is False and loading["error"] is None
        with ThreadPoolExecutor(1) as pool:
            search = pool.submit(client.post, "/search", json={"query": "apples"})
            assert not search.done()
            hold.set()
            assert search.result(timeout=60).status_code == 200
        ready = client.get("/health").json()
        assert ready["ready"] is True and ready["ok"] is True and ready["documents"] == 1


def test_a_service_that_cannot_load_says_why(index_dir, monkeypatch):
    class Broken(FakeEmbedder):
        def warm_up(self) -> None:
            raise RuntimeError("model file damaged")

    engine = Engine(index_dir, embedder=Broken(), reader=RecordingReader(), settings=Settings())
    with TestClient(create_app(Settings(), engine=engine, background=True)) as client:
        for _ in range(600):
            health = client.get("/health").json()
            if health["error"]:
                break
            threading.Event().wait(0.1)
        assert health["ready"] is False and "model file damaged" in health["error"]
        response = client.post("/search", json={"query": "apples"})
        assert response.status_code == 503 and "model file damaged" in response.json()["message"]
        # and the launcher (`qa up`) stops with that reason instead of waiting
        monkeypatch.setattr(
            "qa.serving.launcher.httpx.get", lambda url, **kw: client.get("/health")
        )
        with pytest.raises(LaunchError, match="model file damaged"):
            wait_until_up("http://127.0.0.1:1/health", {}, timeout=5)


def test_the_launcher_waits_until_the_service_is_ready(monkeypatch):
    answers = iter([{"ready": False, "error": None}] * 3 + [{"ready": True, "error": None}])
    seen: list[dict] = []

    def get(url: str, **kw) -> httpx.Response:
        seen.append(body := next(answers))
        return httpx.Response(200, json=body)

    monkeypatch.setattr("qa.serving.launcher.httpx.get", get)
    monkeypatch.setattr("qa.serving.launcher.time.sleep", lambda s: None)
    wait_until_up("http://127.0.0.1:1/health", {}, timeout=60)
    assert len(seen) == 4 and seen[-1]["ready"] is True
