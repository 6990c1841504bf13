"""The bundled encoder: offline, normalized, consistent, and safe to share between threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np


def test_vectors_are_unit_length_and_similar_texts_are_close(embedder):
    vectors = embedder.embed_batch(
        ["The bank lent $1.25 billion.", "A loan of 1.25 billion dollars.", "Penguins swim."]
    )
    assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_batched_embed_keeps_input_order(embedder):
    texts = [f"sentence number {i} " * (i % 7 + 1) for i in range(40)]
    batched = embedder.embed(texts, batch_size=8)
    one_by_one = np.vstack([embedder.embed_batch([t]) for t in texts[:5]])
    assert np.allclose(batched[:5], one_by_one, atol=1e-4)


def test_token_counts_use_the_models_word_pieces(embedder):
    assert embedder.count_tokens(["The U.S. EXIM Bank"]) == [8]


def test_threads_can_share_the_embedder(embedder):
    """A question asked while an upload is being embedded: the tokenizer must not be raced."""

    def work(i: int) -> int:
        texts = [f"text {i} " * (1 + i % 50)] * (1 + i % 5)
        embedder.count_tokens(texts)
        return len(embedder.embed_batch(texts))

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(work, range(80))) == [1 + i % 5 for i in range(80)]
