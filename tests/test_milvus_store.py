"""The Milvus store against a real Milvus Lite (one per module), beside the index folder: the same
passages, round trips per question, and its failure modes (a bad URI, a crash in the middle of a
write). The interface's contract, which every store keeps, is in tests/test_store_contract.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from qa.answering import extractive as answering
from qa.config import Settings
from qa.engine import Engine
from qa.errors import InvalidInput, StoreUnavailable
from qa.indexing import index_paths
from qa.retrieval import search as retrieval
from qa.serving.app import create_app
from qa.store.folder import FolderStore
from qa.store.milvus import MilvusStore
from tests.conftest import FakeEmbedder

pytest.importorskip("milvus_lite", reason="needs the milvus extra: pip install 'qa[milvus]'")

CORPUS = {
    "bridge.txt": "The Harbour Bridge opened in 1932. It carries eight lanes of traffic and two "
    "railway lines across the harbour. Its arch spans 503 metres.",
    "orchard.txt": "The orchard has forty apple trees. Pears grow along the southern wall. "
    "The harvest starts in September and ends in October.",
    "mine.md": "# Reko Diq\n\nThe EXIM Bank approved $1.25 billion in financing for the mine.\n\n"
    "## Jobs\n\nThe project will create 7,500 jobs during construction.",
}
QUERIES = ["When did the bridge open?", "how many apple trees", "EXIM financing jobs", "harvest"]


@pytest.fixture(scope="module")
def milvus_file(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("milvus") / "milvus.db")


@pytest.fixture(scope="module")
def lite(milvus_file) -> MilvusStore:
    """One Milvus Lite for the module; each test takes its own collection prefix."""
    return MilvusStore(milvus_file, "probe")


def corpus(folder: Path) -> Path:
    folder.mkdir()
    for name, text in CORPUS.items():
        (folder / name).write_text(text)
    return folder


def milvus(lite: MilvusStore, name: str) -> MilvusStore:
    store = MilvusStore(lite.uri, name)
    store.drop()
    return store


def passages(store, embedder, query: str) -> list[tuple[str, int, int, str]]:
    view = store.open(embedder.name, embedder.dim)
    return [(p.doc_id, p.start, p.end, p.text) for p in retrieval.search(view, embedder, query, 3)]


def test_milvus_gives_the_folders_passages_and_quotes_verbatim(tmp_path, lite, monkeypatch):
    fake = FakeEmbedder()
    docs = corpus(tmp_path / "docs")
    folder, store = FolderStore(tmp_path / "ix"), milvus(lite, "same")
    assert index_paths([docs], folder, fake).ok
    report = index_paths([docs], store, fake)
    assert report.ok and report.n_chunks == len(CORPUS)
    view = store.open(fake.name, fake.dim)
    assert set(view.manifest["documents"]) == set(CORPUS)
    # documents come back whole, their sections (Markdown headings) included
    folder_view = folder.open(fake.name, fake.dim)
    for doc_id in CORPUS:
        assert view.document(doc_id) == folder_view.document(doc_id)
        assert view.marks(doc_id) == folder_view.marks(doc_id)
    assert [m.section for m in view.marks("mine.md")] == ["Jobs"]
    for query in QUERIES:
        assert passages(store, fake, query) == passages(folder, fake, query), query
        for doc_id, start, end, text in passages(store, fake, query):
            assert view.document(doc_id).text[start:end] == text
    # hybrid: both retrievers score the best passage of a question that shares its words
    (best, *_) = retrieval.search(view, fake, "When did the bridge open?", 3)
    assert best.doc_id == "bridge.txt" and best.dense_score > 0 and best.lexical_score > 0
    # the lexical statistics the answer step uses are the folder's, read all at once (a small
    # index) or counted by Milvus term by term (a large one)
    folder_idf = answering.Idf(folder.open())
    terms = ["bridg", "orchard", "1.25", "zzz", "the"]
    assert [answering.Idf(view)(t) for t in terms] == [folder_idf(t) for t in terms]
    monkeypatch.setattr("qa.store.milvus.DF_SCAN_MAX", 0)
    view = store.open(fake.name, fake.dim)
    assert [answering.Idf(view)(t) for t in terms] == [folder_idf(t) for t in terms]


def test_a_question_reads_chunks_and_vectors_with_its_searches(tmp_path, lite, monkeypatch):
    """Round trips: the hits of the dense and BM25 searches carry their chunks and vectors, so
    fusion and passages ask Milvus for nothing more than the searches and the texts."""
    fake = FakeEmbedder()
    store = milvus(lite, "trips")
    assert index_paths([corpus(tmp_path / "docs")], store, fake).ok
    view = store.open(fake.name, fake.dim)
    view.document("bridge.txt")  # texts are cached per view: read them before counting
    view.document("orchard.txt")
    view.document("mine.md")
    calls: list[str] = []
    for name in ("search", "query"):
        real = getattr(view._client, name)
        monkeypatch.setattr(
            view._client, name, lambda *a, _r=real, _n=name, **k: calls.append(_n) or _r(*a, **k)
        )
    found = retrieval.search(view, fake, "When did the bridge open?", 3)
    assert found[0].doc_id == "bridge.txt"
    assert "query" not in calls and calls.count("search") <= 3
    rows, fresh = list(view._hits), store.open(fake.name, fake.dim)  # fresh: asks Milvus
    assert view.chunks(rows) == fresh.chunks(rows)
    assert np.allclose(view.vectors_of(rows), fresh.vectors_of(rows))


def test_a_crash_mid_write_leaves_each_document_whole(tmp_path, lite, monkeypatch):
    fake = FakeEmbedder()
    docs = corpus(tmp_path / "docs")
    store = milvus(lite, "crash")
    index_paths([docs], store, fake)
    before = store.current_version()
    for name in CORPUS:
        (docs / name).write_text(f"Rewritten {name} about zebras. Zebras have stripes.")
    real = MilvusStore._insert_document
    written = []

    def dies_on_the_second(self, doc, *args):
        parts = real(self, doc, *args)  # the new chunks and text are in, not yet committed
        written.append(doc.id)
        if len(written) == 2:
            raise KeyboardInterrupt("killed")
        return parts

    monkeypatch.setattr(MilvusStore, "_insert_document", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        index_paths([docs], store, fake)
    assert store.current_version() == before  # the run did not finish: no new version
    view = store.open(fake.name, fake.dim)
    first, second = written
    assert "zebras" in view.document(first).text  # committed before the crash: new
    assert "zebras" not in view.document(second).text  # written, not committed: old
    assert view.n_chunks == len(CORPUS)
    for p in retrieval.search(view, fake, "zebras stripes", 10):  # no chunk of a dead write
        assert view.document(p.doc_id).text[p.start : p.end] == p.text
    monkeypatch.undo()
    report = index_paths([docs], store, fake)  # the next run finishes the job and sweeps
    assert sorted(report.updated) == sorted(set(CORPUS) - {first})
    view = store.open(fake.name, fake.dim)
    assert all("zebras" in view.document(d).text for d in CORPUS)
    assert len(retrieval.search(view, fake, "zebras stripes", 10)) == len(CORPUS)
    assert store._count_chunks() == len(CORPUS)  # nothing left behind
    assert store.open().n_chunks == len(CORPUS)


def test_documents_over_http_with_verbatim_citations(tmp_path, lite, embedder):
    docs = corpus(tmp_path / "docs")
    store = milvus(lite, "http")
    assert index_paths([docs], store, embedder).ok
    settings = Settings(_env_file=None, index_dir=tmp_path / "uploads", api_key=None)
    engine = Engine(store, embedder=embedder, settings=settings)
    with TestClient(create_app(settings, engine=engine)) as client:
        listed = client.get("/documents").json()
        assert listed["total"] == len(CORPUS)
        doc = client.get("/documents/mine.md").json()
        assert doc["text"] == CORPUS["mine.md"] and doc["n_chunks"] == 1
        body = client.post("/ask", json={"question": "How many jobs will the project create?"})
        answer = body.json()
        assert not answer["abstained"] and "7,500" in answer["answer"]
        for c in answer["citations"]:
            text = client.get(f"/documents/{c['doc_id']}").json()["text"]
            assert text[c["start"] : c["end"]] == c["quote"]
        assert client.delete("/documents/bridge.txt").status_code == 204
        assert client.get("/documents/bridge.txt").status_code == 404
        assert client.get("/documents").json()["total"] == len(CORPUS) - 1


def test_a_bad_uri_is_one_clear_error(tmp_path):
    with pytest.raises(StoreUnavailable, match="does not exist"):
        MilvusStore(str(tmp_path / "no" / "such" / "folder.db"))
    with pytest.raises(InvalidInput, match="http://localhost:19530"):
        MilvusStore("ftp://example.org/milvus")
    with pytest.raises(StoreUnavailable, match="cannot reach Milvus at http://127.0.0.1:9"):
        MilvusStore("http://127.0.0.1:9")
