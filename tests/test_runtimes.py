"""The encoder's runtimes: ONNX export and its cache, agreement with torch, the backend setting,
the manifest's record of the runtime, and micro-batched questions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qa.answering.reader import default_reader
from qa.cli import app
from qa.config import Settings, get_settings
from qa.encoders import onnx_export
from qa.encoders.embedding import (
    TOLERANCES,
    MiniLMEmbedder,
    OnnxEmbedder,
    TorchBf16Embedder,
    auto_backends,
    make_embedder,
    model_dir,
)
from qa.encoders.microbatch import BatchedEmbedder, MicroBatcher
from qa.engine import Engine
from qa.errors import IndexMismatch, InvalidInput
from qa.indexing import index_paths
from qa.llm.client import Generator
from qa.records import Answer, EmbeddingRuntime
from qa.sources.chunking import ChunkingParams, chunk_text
from tests.conftest import CORPUS, WIND_DOC, FakeEmbedder
from tests.ui_support import child_env

EXPORT = """
import sys
from pathlib import Path
from qa.encoders import onnx_export
from qa.encoders.embedding import model_dir
print(onnx_export.exported(model_dir(), "fp32", Path(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def two_exports(tmp_path_factory) -> tuple[Path, list[str]]:
    """Two processes export into one empty cache at the same time."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EXPORT, str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        outs.append(out.strip())
    return cache, outs


def test_two_processes_exporting_at_once_make_one_valid_file(two_exports):
    cache, outs = two_exports
    assert outs[0] == outs[1]
    path = Path(outs[0])
    assert path.parent.parent == cache and onnx_export._valid(path)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_a_valid_export_is_reused(two_exports, tmp_path):
    cache = _copy(two_exports[0], tmp_path)
    path = onnx_export.exported(model_dir(), "fp32", cache)
    before = path.stat().st_mtime_ns
    assert onnx_export.exported(model_dir(), "fp32", cache) == path
    assert path.stat().st_mtime_ns == before


def test_a_corrupt_export_is_made_again(two_exports, tmp_path):
    """(A missing one is made in `two_exports`, into an empty cache.)"""
    cache = _copy(two_exports[0], tmp_path)
    path = onnx_export.exported(model_dir(), "fp32", cache)
    path.write_bytes(path.read_bytes()[:1000])
    assert not onnx_export._valid(path)
    again = onnx_export.exported(model_dir(), "fp32", cache)
    assert again == path and onnx_export._valid(path)
    vectors = OnnxEmbedder(cache_dir=cache).embed_batch(["The bank lent $1.25 billion."])
    assert np.isclose(np.linalg.norm(vectors[0]), 1, atol=1e-5)


def _copy(cache: Path, tmp_path: Path) -> Path:
    target = tmp_path / "cache"
    shutil.copytree(cache, target)
    return target


# Agreement with torch fp32 on real text: the tests' corpus' chunks, as indexing embeds them
# (tests/test_embedding.py checks every runtime's tolerance on text that ships with the model).


@pytest.fixture(scope="module")
def article_chunks(embedder) -> list[str]:
    """A dozen chunks: bf16 is emulated, and slow, on CPUs without it."""
    text = "\n\n".join((CORPUS / name).read_text() for name in (WIND_DOC, "island-ferry.md"))
    chunks = chunk_text("corpus", text, embedder.count_tokens, ChunkingParams())
    return [c.text for c in chunks][:12]


@pytest.fixture(scope="module")
def torch_vectors(article_chunks) -> np.ndarray:
    return MiniLMEmbedder().embed(article_chunks)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "torch-bf16"])
def test_each_backend_agrees_with_torch_on_real_text(
    two_exports, article_chunks, torch_vectors, backend
):
    embedder = make_embedder(backend, cache_dir=two_exports[0])
    assert embedder.backend == backend
    vectors = embedder.embed(article_chunks)
    assert TOLERANCES[backend].holds(np.sum(vectors * torch_vectors, axis=1))
    # Same word pieces as the torch model, so chunking does not depend on the runtime.
    assert embedder.count_tokens(article_chunks) == MiniLMEmbedder().count_tokens(article_chunks)


# An index built on one kind of CPU opens on the other: torch-bf16 (auto on AMX) and onnx (auto
# on AVX2) vectors agree within MIN_AGREEMENT, so the manifest check lets them share an index.

CROSS_QUESTIONS = {
    "How much did the bank lend?": "840",
    "How many turbines will the wind farm have?": "64",
}


@pytest.mark.parametrize(
    ("built_with", "asked_with"), [("torch-bf16", "onnx"), ("onnx", "torch-bf16")]
)
def test_an_index_built_on_one_cpu_kind_answers_on_the_other(
    tmp_path, two_exports, built_with, asked_with
):
    index_dir = tmp_path / "index"
    report = index_paths([CORPUS / WIND_DOC], index_dir, make_embedder(built_with, two_exports[0]))
    assert report.ok
    engine = Engine(
        index_dir, embedder=make_embedder(asked_with, two_exports[0]), settings=Settings()
    )
    assert engine.status().embedding.backend == built_with
    for question, fact in CROSS_QUESTIONS.items():
        answer = engine.ask(question)
        assert not answer.abstained and fact in answer.answer, (question, answer.answer)
    # and a document added on the other kind joins the same index
    extra = tmp_path / "extra.txt"
    extra.write_text("The ledger lists one crate of apples and two crates of pears. " * 5)
    assert index_paths([extra], index_dir, make_embedder(asked_with, two_exports[0])).ok
    assert (
        "apples"
        in Engine(
            index_dir, embedder=make_embedder(asked_with, two_exports[0]), settings=Settings()
        )
        .search("crates of apples")[0]
        .text
    )


# The setting.


def test_a_bad_backend_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("QA_EMBED_BACKEND", "tensorrt")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["index", "--status"])
    assert result.exit_code == 2
    assert "QA_EMBED_BACKEND='tensorrt'" in result.stderr
    assert "'onnx-int8'" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(InvalidInput, match="QA_EMBED_BACKEND must be one of"):
        make_embedder("tensorrt")


def test_auto_uses_bf16_only_where_the_cpu_has_it(monkeypatch):
    assert auto_backends({"avx512f", "amx_bf16", "amx_tile"})[0] == "torch-bf16"
    assert auto_backends({"avx2", "fma"}) == ("onnx", "onnx")
    for cpu, backend in [("amx", "torch-bf16 for batches, onnx for queries"), ("avx2", "onnx")]:
        monkeypatch.setenv("QA_CPU", cpu)
        get_settings.cache_clear()
        assert make_embedder("auto").backend == backend
    assert isinstance(make_embedder("torch-bf16"), TorchBf16Embedder)


# The manifest records the runtime; searching with a runtime too far from it is refused.


class Runtime(FakeEmbedder):
    def __init__(self, backend: str, agreement: float) -> None:
        super().__init__()
        self.backend, self._agreement = backend, agreement

    def agreement(self) -> float:
        return self._agreement


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("The ledger lists one crate of apples. " * 20)
    return folder


def test_the_manifest_records_the_backend_and_its_agreement(tmp_path):
    index_dir = tmp_path / "index"
    index_paths([_folder(tmp_path)], index_dir, Runtime("onnx-int8", 0.985))
    engine = Engine(index_dir, embedder=Runtime("onnx-int8", 0.985), settings=Settings())
    assert engine.status().embedding == EmbeddingRuntime("onnx-int8", 0.985)
    result = CliRunner().invoke(app, ["index", "--status", "--index", str(index_dir)])
    assert "built with onnx-int8 (mean cosine 0.9850 with torch)" in result.stdout


def test_another_backend_works_within_agreement_or_says_what_to_do(tmp_path):
    index_dir = tmp_path / "index"
    index_paths([_folder(tmp_path)], index_dir, Runtime("onnx-int8", 0.985))
    close = Engine(index_dir, embedder=Runtime("onnx", 0.99999), settings=Settings())
    with pytest.raises(IndexMismatch, match="set QA_EMBED_BACKEND=onnx-int8"):
        close.search("apples")
    exact = Engine(tmp_path / "other", embedder=Runtime("onnx", 0.99999), settings=Settings())
    index_paths([_folder(tmp_path / "b")], exact.index_dir, Runtime("torch", 1.0))
    assert exact.search("apples")


def test_adding_with_a_far_runtime_is_refused(tmp_path):
    index_dir = tmp_path / "index"
    index_paths([_folder(tmp_path)], index_dir, Runtime("onnx-int8", 0.985))
    (tmp_path / "docs" / "b.txt").write_text("Pears are listed too. " * 10)
    with pytest.raises(IndexMismatch):
        index_paths([tmp_path / "docs"], index_dir, Runtime("torch", 1.0))


# Micro-batching: concurrent questions share encoder calls and get the same answers.


QUESTIONS = [
    "How much did the bank lend?",
    "Who approved the loan?",
    "Where is the Kestrel Ridge wind farm?",
    "How many homes will the wind farm supply?",
    "When was the loan announced?",
    "How many jobs will the project create?",
    "Which company develops the wind farm?",
    "What is the Northern Grid Fund?",
]


def test_micro_batched_answers_equal_one_at_a_time_answers(corpus_index, embedder):
    alone = Engine(corpus_index, embedder=embedder, settings=Settings())
    expected = [alone.ask(q) for q in QUESTIONS]
    batched = BatchedEmbedder(embedder, max_batch=32, wait_s=0.05)
    shared = Engine(corpus_index, embedder=batched, settings=Settings())
    got: dict[int, Answer] = {}
    start = threading.Barrier(len(QUESTIONS))

    def ask(i: int) -> None:
        start.wait()
        got[i] = shared.ask(QUESTIONS[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUESTIONS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batched.close()
    assert max(batched.batcher.batches) > 1  # they did share calls
    for i, answer in enumerate(expected):
        assert _answer(got[i]) == _answer(answer), QUESTIONS[i]


def _answer(a: Answer) -> tuple:
    cited = [(c.doc_id, c.start, c.end) for c in a.citations]
    return a.answer, a.abstained, cited, [(p.doc_id, p.start, p.end) for p in a.passages]


def test_an_encoder_error_reaches_every_waiting_caller():
    def fail(texts):
        raise RuntimeError("encoder broke")

    batcher = MicroBatcher(fail, wait_s=0.01)
    with pytest.raises(RuntimeError, match="encoder broke"):
        batcher("a question")
    batcher.close()


def test_health_says_the_backend(corpus_index):
    settings = Settings(index_dir=corpus_index, query_batch_wait_ms=1)
    with TestClient(app_for(settings)) as client:
        health = client.get("/health").json()
    assert health["embed_backend"] and health["index_backend"]
    assert json.dumps(health)


def app_for(settings: Settings):
    from qa.serving.app import create_app

    return create_app(settings)


class BlockingLLM(Generator):
    """An LLM that holds a reply until released: another request's slow generation."""

    def __init__(self) -> None:
        self.release, self.started = threading.Event(), threading.Event()

    def complete(self, messages, stream=False):
        self.started.set()
        self.release.wait(timeout=60)
        return "The bank lent money [1]."


def test_no_question_waits_on_another_questions_llm_call(corpus_index, embedder):
    llm = BlockingLLM()
    batched = BatchedEmbedder(embedder, wait_s=0.002)
    engine = Engine(corpus_index, embedder=batched, settings=Settings(), generator=llm)
    slow = threading.Thread(target=engine.ask, args=("How much did the bank lend?",))
    slow.start()
    assert llm.started.wait(timeout=60)
    fast = engine.ask("Who approved the loan?", mode="extractive")  # while the LLM holds
    assert fast.citations and not llm.release.is_set()
    llm.release.set()
    slow.join()
    batched.close()


PROBE = """
import json, sys
from pathlib import Path
from qa.engine import Engine
engine = Engine(Path(sys.argv[1]))
answers = [engine.ask(q) for q in sys.argv[2:]]
print(json.dumps({
    "reader": engine.reader.runtime,
    "reader_model": engine.reader.model is not None,
    "embedder": engine.embedder.backend,
    "loaded": sorted({"torch", "transformers", "sentence_transformers"} & set(sys.modules)),
    "answers": [[a.answer, a.short_answer, [[c.start, c.end] for c in a.citations]]
                for a in answers],
}))
"""


def test_on_onnx_runtime_the_service_never_loads_pytorch(corpus_index, embedder):
    """Encoder and reader on ONNX Runtime (the default here), their files exported: a process
    answering questions never imports PyTorch or transformers (~370 MB resident instead of
    ~730 with the reader's PyTorch model beside its session), and answers as PyTorch does."""
    from qa.answering.reader import Reader

    default_reader()  # the reader's ONNX file exported, as after a first start
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(corpus_index), *QUESTIONS],
        capture_output=True,
        text=True,
        timeout=600,
        env=child_env(QA_EMBED_BACKEND="onnx"),
    )
    assert run.returncode == 0, run.stderr
    probe = json.loads(run.stdout.splitlines()[-1])
    assert (probe["reader"], probe["embedder"]) == ("onnx", "onnx")
    assert not probe["reader_model"] and probe["loaded"] == []
    on_torch = Engine(corpus_index, embedder=MiniLMEmbedder(), settings=Settings(), reader=Reader())
    expected = [on_torch.ask(q) for q in QUESTIONS]
    assert [a.short_answer for a in expected if a.short_answer]  # the reader had its say
    for got, want in zip(probe["answers"], expected, strict=True):
        cited = [[c.start, c.end] for c in want.citations]
        assert got == [want.answer, want.short_answer, cited]


def test_word_pieces_without_pytorch_equal_transformers(article_chunks):
    """The Rust tokenizers set up by qa give transformers' ids: the encoder's (truncated at 256,
    padded; counted without special tokens) and the reader's pairs (only the context cut)."""
    from transformers import AutoTokenizer

    from qa.answering.reader import MAX_TOKENS, Pair, encode, pair_tokenizer, pairs_in
    from qa.encoders.word_pieces import word_pieces

    hf = AutoTokenizer.from_pretrained(str(model_dir()))
    long = " ".join(article_chunks)  # far over 256 word pieces
    texts = [*article_chunks[:8], long, "short"]
    ours = OnnxEmbedder()
    want = hf(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
    got = word_pieces(model_dir(), 256, pad=True).encode_batch(texts)
    assert np.array_equal(np.array([r.ids for r in got]), want["input_ids"])
    assert np.array_equal(np.array([r.attention_mask for r in got]), want["attention_mask"])
    assert ours.count_tokens(texts) == [
        len(ids) for ids in hf(texts, add_special_tokens=False)["input_ids"]
    ]
    assert ours.count_tokens([long])[0] > 256

    sentences = [s for chunk in article_chunks[:4] for s in chunk.split(". ") if s]
    spans, at = [], 0
    for s in sentences:
        spans.append((at, at + len(s)))
        at += len(s) + 1
    pairs = pairs_in(" ".join(sentences), "Reko Diq", spans)
    pairs.append(Pair(sentences[0], "Reko Diq", long, long))  # context cut at MAX_TOKENS
    for question in ("How many jobs will the project create?", "Who lent the money?"):
        a = encode(hf, question, pairs, MAX_TOKENS)
        b = encode(pair_tokenizer(MAX_TOKENS), question, pairs, MAX_TOKENS)
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    with pytest.raises(ValueError, match="pair_tokenizer"):
        encode(pair_tokenizer(64), "a question?", pairs, MAX_TOKENS)
