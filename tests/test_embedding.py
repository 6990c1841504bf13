"""The encoder's contract, over every runtime on every CPU and every wrapper (the service's
micro-batching, Ray actors): the same order, shapes and unit norms, the model's word pieces, and
vectors within the runtime's documented tolerance of the torch fp32 reference
(`qa.encoders.embedding.TOLERANCES`). bf16 runs emulated (and slowly) where the CPU has no bf16
units, so `torch-bf16` and the `auto` choice of an AMX CPU are tested everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qa.config import get_settings
from qa.encoders.embedding import (
    MIN_AGREEMENT,
    TOLERANCES,
    Embedder,
    MiniLMEmbedder,
    SplitEmbedder,
    agreement_sample,
    make_embedder,
)
from qa.encoders.microbatch import BatchedEmbedder

# (the runtime as QA_EMBED_BACKEND names it, after the wrapper around it if any, the CPU QA_CPU
# pretends, the tolerance it must meet)
RUNTIMES = [
    ("torch", "host", "torch"),
    ("torch-bf16", "host", "torch-bf16"),
    ("onnx", "host", "onnx"),
    ("onnx-int8", "host", "onnx-int8"),
    ("auto", "amx", "torch-bf16"),  # torch-bf16 for batches, onnx for questions
    ("auto", "avx2", "onnx"),
    ("batched:onnx", "host", "onnx"),  # the service's micro-batched questions
    ("ray:torch", "host", "torch"),  # `qa index --ray`: batches embedded on a Ray actor
]
TEXTS = [
    "The bank lent $1.25 billion.",
    "A loan of 1.25 billion dollars.",
    "Penguins swim.",
    *(f"sentence number {i} " * (i % 7 + 1) for i in range(21)),
]


@pytest.fixture(scope="module")
def reference() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def sample(reference) -> tuple[list[str], np.ndarray]:
    """Real prose (the model card's paragraphs, shipped with the model) and torch fp32's vectors."""
    texts = agreement_sample() + TEXTS
    return texts, reference.embed_batch(texts)


def _name(runtime: tuple[str, str, str]) -> str:
    return runtime[0] if runtime[1] == "host" else "-".join(runtime[:2])


@pytest.fixture(scope="module", params=RUNTIMES, ids=_name)
def runtime(request) -> Iterator[tuple[Embedder, str]]:
    name, cpu, tolerance = request.param
    wrapper, _, backend = name.rpartition(":")
    if wrapper == "ray":
        ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'qa[ray]'")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QA_CPU", cpu)
        get_settings.cache_clear()
        embedder = make_embedder(backend)
    get_settings.cache_clear()
    if wrapper == "batched":
        embedder = BatchedEmbedder(embedder)
    elif wrapper == "ray":
        from qa.encoders.ray import RayEmbedder

        embedder = RayEmbedder(embedder, actors=1, factory=MiniLMEmbedder, num_cpus=2)
    yield embedder, tolerance
    if wrapper == "batched":
        embedder.close()
    elif wrapper == "ray":
        ray.shutdown()


def test_auto_resolves_by_the_cpu_kind(runtime):
    embedder, _ = runtime
    if isinstance(embedder, SplitEmbedder):
        assert (embedder.batches.backend, embedder.queries.backend) == ("torch-bf16", "onnx")


def test_vectors_are_unit_length_and_similar_texts_are_close(runtime):
    embedder, _ = runtime
    for vectors in (embedder.embed_batch(TEXTS[:3]), embedder.embed_queries(TEXTS[:3])):
        assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
        assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_vectors_agree_with_torch_fp32_within_the_runtimes_tolerance(runtime, sample):
    embedder, tolerance = runtime
    texts, expected = sample
    for vectors in (embedder.embed(texts, batch_size=8), embedder.embed_queries(texts)):
        cosines = np.sum(vectors * expected, axis=1)
        assert TOLERANCES[tolerance].holds(cosines), (cosines.mean(), cosines.min())
    # what the manifest records, and what its check compares with MIN_AGREEMENT
    assert embedder.agreement() >= TOLERANCES[tolerance].mean


def test_batched_embed_keeps_input_order(runtime):
    """Length buckets reorder the texts inside `embed`; each vector must come back to its text.
    (bf16 results depend on what else is in the batch, so the check is by cosine, not equality.)"""
    embedder, tolerance = runtime
    batched = embedder.embed(TEXTS, batch_size=8)
    alone = np.vstack([embedder.embed_batch([t]) for t in TEXTS])
    cosines = batched @ alone.T
    assert np.all(np.diagonal(cosines) >= TOLERANCES[tolerance].min)
    # each text's nearest vector alone is its own (texts that repeat a phrase are near, not equal)
    assert list(np.argmax(cosines, axis=1)) == list(range(len(TEXTS)))


def test_one_question_alone_gets_the_vector_it_gets_among_others(runtime):
    """`embed_query` (micro-batched in the service) against `embed_queries` of several."""
    embedder, tolerance = runtime
    alone = np.vstack([embedder.embed_query(t) for t in TEXTS[:4]])
    together = embedder.embed_queries(TEXTS[:4])
    assert alone.shape == together.shape == (4, embedder.dim)
    assert np.all(np.sum(alone * together, axis=1) >= 2 * TOLERANCES[tolerance].min - 1)


def test_token_counts_are_the_models_word_pieces(runtime, reference):
    embedder, _ = runtime
    assert embedder.count_tokens(["The U.S. EXIM Bank"]) == [8]
    assert embedder.count_tokens(TEXTS) == reference.count_tokens(TEXTS)


def test_threads_can_share_the_embedder(runtime):
    """A question asked while an upload is being embedded: the tokenizer must not be raced."""
    embedder, _ = runtime

    def work(i: int) -> int:
        texts = [f"text {i} " * (1 + i % 50)] * (1 + i % 5)
        embedder.count_tokens(texts)
        return len(embedder.embed_batch(texts)) + len(embedder.embed_queries(texts[:1]))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(24))) == [2 + i % 5 for i in range(24)]


def test_runtimes_that_may_share_an_index_are_the_documented_ones():
    """The manifest check mixes two runtimes' vectors only when both reach MIN_AGREEMENT: by
    the documented tolerances torch, onnx and torch-bf16 can, onnx-int8 never."""
    mixable = {name for name, t in TOLERANCES.items() if t.mean >= MIN_AGREEMENT}
    assert mixable == {"torch", "onnx", "torch-bf16"}
