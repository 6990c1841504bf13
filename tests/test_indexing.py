"""Incremental, atomic indexing: unchanged files cost nothing, crashes lose nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qa.errors import IndexMismatch
from qa.indexing import index_paths
from qa.store import folder as store
from tests.conftest import ROOT, FakeEmbedder


def write_corpus(folder: Path, n: int = 3, sentences: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(f"Document {i} states fact {j} about topic {i}." for j in range(sentences))
        (folder / f"doc{i}.txt").write_text(body)
    return folder


def snapshot_is_consistent(index_dir: Path) -> store.Snapshot:
    """Load the live version and check every invariant a reader relies on."""
    snap = store.open_snapshot(index_dir)
    m = snap.manifest
    assert snap.vectors.ntotal == m["n_chunks"]
    (count,) = snap.db.execute("SELECT COUNT(*) FROM chunks").fetchone()
    assert count == m["n_chunks"]
    for doc_id, meta in m["documents"].items():
        doc = snap.document(doc_id)
        chunks = snap.doc_chunks(doc_id)
        assert len(chunks) == meta["n_chunks"]
        assert all(doc.text[c.start : c.end] == c.text for _, c in chunks)
    return snap


def test_first_build_then_nothing_to_do(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus")
    first = index_paths([corpus], tmp_path / "ix", fake_embedder, batch_size=8)
    assert sorted(first.added) == ["doc0.txt", "doc1.txt", "doc2.txt"]
    assert first.embedded_chunks == first.n_chunks > 0
    fake_embedder.embedded.clear()
    again = index_paths([corpus], tmp_path / "ix", fake_embedder)
    assert again.unchanged and not (again.added or again.updated or again.removed)
    assert fake_embedder.embedded == []
    assert again.version == first.version, "no new version when nothing changed"
    snapshot_is_consistent(tmp_path / "ix")


def test_changed_file_replaces_only_its_chunks(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus")
    index_paths([corpus], tmp_path / "ix", fake_embedder)
    (corpus / "doc1.txt").write_text("A completely new text. It has two sentences.")
    fake_embedder.embedded.clear()
    report = index_paths([corpus], tmp_path / "ix", fake_embedder)
    assert report.updated == ["doc1.txt"] and report.embedded_chunks == 1
    assert all("new text" in t for t in fake_embedder.embedded)
    snap = snapshot_is_consistent(tmp_path / "ix")
    assert [c.text for _, c in snap.doc_chunks("doc1.txt")] == [
        "A completely new text. It has two sentences."
    ]


def test_deleted_file_is_pruned_and_can_be_kept(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus")
    index_paths([corpus], tmp_path / "ix", fake_embedder)
    (corpus / "doc2.txt").unlink()
    kept = index_paths([corpus], tmp_path / "ix", fake_embedder, prune=False)
    assert kept.removed == []
    report = index_paths([corpus], tmp_path / "ix", fake_embedder)
    assert report.removed == ["doc2.txt"]
    snap = snapshot_is_consistent(tmp_path / "ix")
    assert sorted(snap.manifest["documents"]) == ["doc0.txt", "doc1.txt"]


def test_duplicate_content_under_two_names_is_embedded_once(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus", n=1)
    (corpus / "copy.txt").write_bytes((corpus / "doc0.txt").read_bytes())
    report = index_paths([corpus], tmp_path / "ix", fake_embedder)
    assert sorted(report.added) == ["copy.txt", "doc0.txt"]
    assert report.embedded_chunks * 2 == report.n_chunks
    snap = snapshot_is_consistent(tmp_path / "ix")
    assert len(snap.doc_chunks("copy.txt")) == len(snap.doc_chunks("doc0.txt"))
    # Indexing the same folder again never duplicates anything.
    index_paths([corpus], tmp_path / "ix", fake_embedder)
    assert snapshot_is_consistent(tmp_path / "ix").n_chunks == report.n_chunks


def test_bad_files_are_reported_and_the_rest_indexed(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus", n=2)
    (corpus / "empty.txt").write_text("")
    (corpus / "latin1.txt").write_bytes("café".encode("latin-1"))
    (corpus / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    report = index_paths([corpus], tmp_path / "ix", fake_embedder)
    assert sorted(report.added) == ["doc0.txt", "doc1.txt"]
    failed = {Path(path).name: reason for path, reason in report.failed}
    assert set(failed) == {"empty.txt", "latin1.txt", "bad.pdf"}
    assert "UTF-8" in failed["latin1.txt"]
    assert not report.ok


def test_a_file_that_turns_corrupt_keeps_its_previous_version(tmp_path, fake_embedder):
    corpus = write_corpus(tmp_path / "corpus", n=2)
    index_paths([corpus], tmp_path / "ix", fake_embedder)
    (corpus / "doc1.txt").write_bytes(b"\x00\x00binary now")
    report = index_paths([corpus], tmp_path / "ix", fake_embedder)
    assert [Path(p).name for p, _ in report.failed] == ["doc1.txt"]
    snap = snapshot_is_consistent(tmp_path / "ix")
    assert "Document 1 states" in snap.document("doc1.txt").text


def test_loading_refuses_another_model_dimension_or_format(tmp_path, fake_embedder):
    index_paths([write_corpus(tmp_path / "corpus", n=1)], tmp_path / "ix", fake_embedder)
    with pytest.raises(IndexMismatch, match="built with model"):
        store.open_snapshot(tmp_path / "ix", model="other/model")
    with pytest.raises(IndexMismatch, match="384"):
        store.open_snapshot(tmp_path / "ix", dim=384)

    class OtherModel(FakeEmbedder):
        name = "other/model"

    with pytest.raises(IndexMismatch):
        index_paths([tmp_path / "corpus"], tmp_path / "ix", OtherModel())
    version = store.current_version(tmp_path / "ix")
    manifest_path = tmp_path / "ix" / version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(IndexMismatch, match="format"):
        store.open_snapshot(tmp_path / "ix")


def test_changed_chunking_reembeds_everything(tmp_path, fake_embedder):
    from qa.sources.chunking import ChunkingParams

    corpus = write_corpus(tmp_path / "corpus", n=2)
    first = index_paths([corpus], tmp_path / "ix", fake_embedder, ChunkingParams(64, 1))
    report = index_paths([corpus], tmp_path / "ix", fake_embedder, ChunkingParams(32, 0))
    assert report.n_chunks > first.n_chunks and report.embedded_chunks == report.n_chunks
    assert store.open_snapshot(tmp_path / "ix").manifest["chunking"]["max_tokens"] == 32


def test_kill_nine_mid_build_leaves_the_previous_version_intact(tmp_path, fake_embedder):
    """A real subprocess is killed at random moments while it rebuilds a changed corpus."""
    corpus = write_corpus(tmp_path / "corpus", n=6, sentences=200)
    index_dir = tmp_path / "ix"
    index_paths([corpus], index_dir, fake_embedder)
    before = snapshot_is_consistent(index_dir)
    expected = (before.version, before.manifest["documents"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(1234)
    killed = 0

    def start(attempt: int) -> subprocess.Popen:
        for f in corpus.iterdir():  # every round changes every file: a full rebuild is needed
            f.write_text(f.read_text() + f" Round {attempt}.")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.index_worker", str(corpus), str(index_dir)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "started"
        return proc

    # How long a whole build takes on this machine now (from "started", after the imports), so
    # the kills land inside one.
    first = start(-1)
    t0 = time.monotonic()
    assert first.wait() == 0
    build_s = time.monotonic() - t0
    after = snapshot_is_consistent(index_dir)
    assert after.version != expected[0]
    expected = (after.version, after.manifest["documents"])
    for attempt in range(6):
        proc = start(attempt)
        time.sleep(rng.uniform(0.02, 0.6) * build_s)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        snap = snapshot_is_consistent(index_dir)
        if snap.version == expected[0]:
            assert snap.manifest["documents"] == expected[1]
        else:  # the worker finished before the kill: its version must be whole
            expected = (snap.version, snap.manifest["documents"])
    assert killed >= 3, "the build should usually still be running when killed"
    # A later run cleans up after the dead writers and succeeds.
    report = index_paths([corpus], index_dir, fake_embedder)
    assert report.ok
    assert not list(index_dir.glob(".v*"))


def test_cli_index_reports_failures_in_its_exit_status(tmp_path, monkeypatch):
    from qa import cli

    corpus = write_corpus(tmp_path / "corpus", n=1, sentences=3)
    monkeypatch.setattr("qa.encoders.embedding.default_embedder", lambda: FakeEmbedder())
    runner = CliRunner()
    ok = runner.invoke(cli.app, ["index", str(corpus), "--index", str(tmp_path / "ix")])
    assert ok.exit_code == 0, ok.output
    assert "added 1" in ok.output
    (corpus / "bad.txt").write_bytes(b"\x00binary")
    bad = runner.invoke(cli.app, ["index", str(corpus), "--index", str(tmp_path / "ix")])
    assert bad.exit_code == 1
    assert "bad.txt" in bad.output and "failed 1" in bad.output
    status = runner.invoke(cli.app, ["index", "--status", "--index", str(tmp_path / "ix")])
    assert status.exit_code == 0 and "documents 1" in status.output
    missing = runner.invoke(cli.app, ["index", "--status", "--index", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "qa index" in missing.output


def test_a_new_loader_version_rereads_unchanged_files(tmp_path, fake_embedder, monkeypatch):
    from qa.sources import ingest

    corpus = write_corpus(tmp_path / "corpus", n=2)
    first = index_paths([corpus], tmp_path / "ix", fake_embedder)
    monkeypatch.setattr(ingest, "VERSION", ingest.VERSION + 1)
    report = index_paths([corpus], tmp_path / "ix", fake_embedder)
    assert sorted(report.updated) == ["doc0.txt", "doc1.txt"]
    assert report.embedded_chunks == first.n_chunks
    snap = snapshot_is_consistent(tmp_path / "ix")
    assert snap.manifest["ingest_version"] == ingest.VERSION


@pytest.mark.parametrize(
    "name, value, says",
    [("QA_MIN_COVERAGE", "2", "less than or equal to 1"), ("QA_TOP_K", "zero", "valid integer")],
)
def test_a_bad_setting_is_one_clear_error_before_any_command(
    tmp_path, monkeypatch, name, value, says
):
    from qa import cli
    from qa.config import get_settings

    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["index", "--status", "--index", str(tmp_path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert f"{name}='{value}'" in result.output and says in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("kind", "faiss_class"), [("hnsw", "IndexHNSW"), ("ivf", "IndexIVFFlat")])
def test_approximate_settings_build_an_index_that_finds_what_flat_finds(
    tmp_path, monkeypatch, kind, faiss_class
):
    import faiss

    from qa.cli import app
    from qa.config import get_settings
    from qa.retrieval import search as retrieval

    fake = FakeEmbedder()
    monkeypatch.setattr("qa.encoders.embedding.default_embedder", lambda: fake)
    corpus = write_corpus(tmp_path / "corpus", n=4)
    index_paths([corpus], tmp_path / "flat", fake)
    monkeypatch.setenv("QA_VECTOR_INDEX", kind)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["index", str(corpus), "--index", str(tmp_path / kind)])
    assert result.exit_code == 0, result.output
    flat, approx = (
        snapshot_is_consistent(tmp_path / "flat"),
        snapshot_is_consistent(tmp_path / kind),
    )
    assert isinstance(approx.vectors, getattr(faiss, faiss_class))
    assert approx.manifest["vector_index"] == kind
    assert isinstance(flat.vectors, faiss.IndexFlat) and "vector_index" not in flat.manifest
    for query in ("fact 3 about topic 2", "Document 1 states", "topic 0"):
        assert retrieval.search(approx, fake, query, 5) == retrieval.search(flat, fake, query, 5)
    only = retrieval.Filters(doc_ids=("doc2.txt",))
    assert {p.doc_id for p in retrieval.search(approx, fake, "fact 3", 5, only)} == {"doc2.txt"}
    assert np.allclose(approx.all_vectors(), flat.all_vectors(), atol=1e-6)
    monkeypatch.setenv("QA_VECTOR_INDEX", "annoy")
    get_settings.cache_clear()
    bad = CliRunner().invoke(app, ["index", str(corpus), "--index", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "QA_VECTOR_INDEX" in bad.output


def test_ivf_probes_a_part_of_its_lists_and_keeps_a_row_filter():
    from qa.store.folder import Snapshot, build_vector_index, ivf_lists, ivf_probes

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 32))
    x = centres[rng.integers(0, 40, 20_000)] + 0.5 * rng.standard_normal((20_000, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ivf = build_vector_index("ivf", x, 32)
    assert ivf.nlist == ivf_lists(len(x)) > ivf_probes(ivf.nlist)  # a search scans a part
    view = Snapshot(Path("unused"), {"n_chunks": len(x)}, ivf, None, None)
    queries = x[:50] + 0.1 * rng.standard_normal((50, 32)).astype(np.float32)
    found = 0
    for q in queries:
        exact = set(np.argsort(-(x @ q))[:10].tolist())
        found += len(exact & set(view.dense_search(q, 10)))
    assert found / 500 >= 0.9
    allowed = np.arange(0, len(x), 7)
    assert set(view.dense_search(queries[0], 10, allowed)) <= set(allowed.tolist())
