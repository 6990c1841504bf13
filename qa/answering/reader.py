"""The reader: a cross-encoder trained here that reads a question against one candidate sentence.

For each (question, sentence in its context) pair it gives the probability that the sentence
answers the question, and the short answer's span inside the sentence. It is MiniLM-L6 (the
bundled embedding model's encoder) with two small heads, fine-tuned on SQuAD 2.0's answerable
and adversarial unanswerable questions (`qa train reader`, see `qa/training/reader.py` and
`models/reader/MODEL_CARD.md`).

The pair is encoded as `[CLS] question [SEP] sentence [SEP] title | previous next [SEP]`: the
sentence comes first so truncation only ever cuts its context, and the span head may only point
inside the sentence.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from qa.answering.reader_format import (
    CONFIG,
    MAX_ANSWER_TOKENS,
    MAX_TOKENS,
    MODEL_DIR,
    ONNX_INPUTS,
    WEIGHTS,
    base_model_dir,
)

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

    from qa.answering.reader_model import ReaderModel

    # transformers' tokenizer (training), or the Rust one of `pair_tokenizer` (reading)
    PairTokenizer: TypeAlias = Tokenizer | PreTrainedTokenizerBase


def __getattr__(name: str) -> Any:
    """`ReaderModel` and `SPAN_LOSS_WEIGHT` live in `qa/answering/reader_model.py` (PyTorch);
    importing them from here still works, and loads PyTorch only then."""
    if name in ("ReaderModel", "SPAN_LOSS_WEIGHT"):
        from qa.answering import reader_model

        return getattr(reader_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ReaderError(RuntimeError):
    """The reader model is missing or unreadable."""


@dataclass(frozen=True)
class Pair:
    """One candidate sentence to read against the question, with its context."""

    sentence: str
    title: str = ""
    before: str = ""  # the sentence before, in its passage
    after: str = ""  # the sentence after


@dataclass(frozen=True)
class Reading:
    """What the reader made of one pair: `prob` that the sentence answers the question, and
    the short answer as character offsets into the sentence (None when none is likely);
    `null_prob`, the probability of the "no answer" span (0 for a model without one)."""

    prob: float
    span: tuple[int, int] | None
    span_prob: float
    null_prob: float = 0.0


def pairs_in(text: str, title: str, spans: Sequence[tuple[int, int]]) -> list[Pair]:
    """Each sentence of `text` (at `spans`) as the reader reads it: with the document's title
    and the sentences before and after it."""
    return [
        Pair(
            sentence=text[s:e],
            title=title,
            before=text[slice(*spans[i - 1])] if i else "",
            after=text[slice(*spans[i + 1])] if i + 1 < len(spans) else "",
        )
        for i, (s, e) in enumerate(spans)
    ]


def clip_question(tokenizer: PairTokenizer, question: str, limit: int) -> str:
    """`question` cut to its last `limit` word pieces, so a long one (a preamble of context
    before the asking sentence, which comes last) leaves room for the sentence it is read with."""
    if hasattr(tokenizer, "encode_batch"):
        offsets = _question_counter().encode(question, add_special_tokens=False).offsets
    else:
        offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
    if len(offsets) <= limit:
        return question
    return question[offsets[-limit][0] :]


@functools.cache
def _question_counter() -> Tokenizer:
    """The base model's word pieces with no truncation: the pair tokenizer's "only_second"
    truncation refuses a lone text that is too long. Never changed, so threads share it."""
    from qa.encoders.word_pieces import word_pieces

    return word_pieces(base_model_dir())


def encode(
    tokenizer: PairTokenizer, question: str, pairs: Sequence[Pair], max_tokens: int = MAX_TOKENS
) -> dict[str, np.ndarray]:
    """Token ids for (question, pair) inputs, with the mask of the sentence's own tokens and,
    per row, each token's character offsets into the sentence (-1 outside it).

    `tokenizer`: transformers' (training), or a `tokenizers.Tokenizer` from `pair_tokenizer`
    set to `max_tokens` (reading: the same ids without loading PyTorch)."""
    seconds = [_second(p) for p in pairs]
    question = clip_question(tokenizer, question, max_tokens // 2)
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        if (tokenizer.truncation or {}).get("max_length") != max_tokens:
            raise ValueError(f"encode needs pair_tokenizer({max_tokens}), set to that length")
        rows = tokenizer.encode_batch([(question, second) for second in seconds])
        enc = {
            name: np.array([getattr(r, attr) for r in rows], dtype=np.int64)
            for name, attr in (
                ("input_ids", "ids"),
                ("token_type_ids", "type_ids"),
                ("attention_mask", "attention_mask"),
            )
        }
        offsets = np.array([r.offsets for r in rows], dtype=np.int64)
        sequences = [r.sequence_ids for r in rows]
    else:
        enc = tokenizer(
            [question] * len(pairs),
            seconds,
            truncation="only_second",
            max_length=max_tokens,
            padding=True,
            return_offsets_mapping=True,
            return_tensors="np",
        )
        offsets = enc.pop("offset_mapping")
        sequences = [enc.sequence_ids(row) for row in range(len(pairs))]
        enc = dict(enc)
    span_mask = np.zeros(enc["input_ids"].shape, dtype=np.int64)
    for row, pair in enumerate(pairs):
        n = len(pair.sentence)
        for t, seq in enumerate(sequences[row]):
            if seq == 1 and offsets[row, t, 1] <= n and offsets[row, t, 1] > offsets[row, t, 0]:
                span_mask[row, t] = 1
    enc["span_mask"] = span_mask
    enc["offsets"] = np.where(span_mask[..., None] == 1, offsets, -1)
    return enc


def pair_tokenizer(max_tokens: int = MAX_TOKENS) -> Tokenizer:
    """The base model's tokenizer set up for `encode`'s pairs (truncating only the second
    text, padding to the longest), without PyTorch; thread-safe."""
    from qa.encoders.word_pieces import word_pieces

    return word_pieces(base_model_dir(), max_tokens, pad=True, strategy="only_second")


def _second(pair: Pair) -> str:
    context = " ".join(x for x in (pair.before, pair.after) if x)
    return f"{pair.sentence} [SEP] {pair.title} | {context}"


class Reader:
    """The trained reader, loaded once, on the CPU; thread-safe."""

    model: ReaderModel | None  # None when reading on ONNX Runtime
    tokenizer: PairTokenizer
    max_tokens: int
    meta: dict[str, Any]
    _session: InferenceSession | None  # an ONNX Runtime session, when reading on it

    def __init__(self, model_dir: Path | str = MODEL_DIR, onnx_cache: Path | None = None) -> None:
        """Load the model in `model_dir`; with `onnx_cache`, read on ONNX Runtime with the model
        exported once into that cache (same readings, ~2.5x faster per question here)."""
        model_dir = Path(model_dir)
        for needed in (model_dir / WEIGHTS, model_dir / CONFIG):
            if not needed.is_file():
                raise ReaderError(
                    f"reader model file {needed} is missing; restore models/reader from git "
                    "(git checkout -- models/reader) or retrain it with `qa train reader`"
                )
        try:
            meta = json.loads((model_dir / CONFIG).read_text())
            max_tokens = int(meta.get("max_tokens", MAX_TOKENS))
            tokenizer = pair_tokenizer(max_tokens)
        except Exception as exc:
            raise _unloadable(model_dir, exc) from exc
        self._use(None, tokenizer, max_tokens)
        self.meta = meta
        if meta.get("answerability", "head") != "head":  # the variants were removed
            raise _unloadable(
                model_dir,
                ValueError(
                    f"answerability {meta['answerability']!r} was removed (the answerability "
                    "head is the reading's probability, see docs/reader.md)"
                ),
            )
        if onnx_cache is None:
            self.model = _load_model(model_dir)
        else:
            # The PyTorch model is loaded only to export it (once per cache) and never kept,
            # nor is PyTorch imported when the file is there: the session reads alone.
            self._session = _onnx_session(
                lambda: _load_model(model_dir), tokenizer, max_tokens, model_dir, Path(onnx_cache)
            )

    @classmethod
    def of(
        cls, model: ReaderModel, tokenizer: PairTokenizer, max_tokens: int = MAX_TOKENS
    ) -> Reader:
        """A reader around a model in memory (training's validation reads with it)."""
        reader = cls.__new__(cls)
        reader._use(model, tokenizer, max_tokens)
        reader.meta = {}
        return reader

    def _use(self, model: ReaderModel | None, tokenizer: PairTokenizer, max_tokens: int) -> None:
        if model is not None:
            model.eval()
        self.model, self.tokenizer, self.max_tokens = model, tokenizer, max_tokens
        self._lock = threading.Lock()
        self._session = None

    @property
    def runtime(self) -> str:
        return "torch" if self._session is None else "onnx"

    def read(self, question: str, pairs: Sequence[Pair], batch_size: int = 32) -> list[Reading]:
        """One `Reading` per pair, in order."""
        out: list[Reading] = []
        for i in range(0, len(pairs), batch_size):
            out.extend(self._read_batch(question, pairs[i : i + batch_size]))
        return out

    def _read_batch(self, question: str, pairs: Sequence[Pair]) -> list[Reading]:
        if not pairs:
            return []
        enc = encode(self.tokenizer, question, pairs, self.max_tokens)
        offsets = enc.pop("offsets")
        if self._session is not None:
            logits, start, end = self._session.run(None, {k: enc[k] for k in ONNX_INPUTS})
            probs = 1.0 / (1.0 + np.exp(-logits))
            start, end = _log_softmax(start), _log_softmax(end)
        else:
            from qa.answering import reader_model

            assert self.model is not None  # a reader without a session has its model
            with self._lock:
                probs, start, end = reader_model.read(self.model, enc)
        readings = []
        for r in range(len(pairs)):
            span, span_prob = _best_span(start[r], end[r], offsets[r])
            null_prob = float(np.exp(start[r, 0] + end[r, 0]))
            readings.append(Reading(float(probs[r]), span, span_prob, null_prob))
        return readings


def _load_model(model_dir: Path) -> ReaderModel:
    """The reader's PyTorch model (`qa/answering/reader_model.py`), or one clear error."""
    try:
        from qa.answering.reader_model import load_model

        return load_model(model_dir)
    except Exception as exc:  # corrupt or mismatched files: one clear message
        raise _unloadable(model_dir, exc) from exc


def _unloadable(model_dir: Path, exc: Exception) -> ReaderError:
    return ReaderError(
        f"reader model in {model_dir} cannot be loaded ({type(exc).__name__}: {exc}); "
        "restore it from git (git checkout -- models/reader) or retrain it with "
        "`qa train reader`"
    )


class Reads(Protocol):
    """What the answer step needs of a reader (a `Reader`, a test's fake)."""

    def read(self, question: str, pairs: Sequence[Pair]) -> list[Reading]: ...


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x))) over the last axis, kept as a length-1 axis."""
    top = x.max(-1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(-1, keepdims=True))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return x - _logsumexp(x)


def _onnx_session(
    load_model: Callable[[], ReaderModel],
    tokenizer: PairTokenizer,
    max_tokens: int,
    model_dir: Path,
    cache_dir: Path,
) -> InferenceSession:
    """An ONNX Runtime session of the model `load_model()` loads, exported once into
    `cache_dir` (see `onnx_export.cached`), keyed by the reader's files and the base model's:
    the model is loaded only when the file has to be made."""
    from qa.encoders import onnx_export
    from qa.encoders.embedding import onnx_session

    digest = hashlib.sha256(f"reader-{onnx_export.EXPORT_VERSION}".encode())
    for path in (model_dir / WEIGHTS, model_dir / CONFIG):
        digest.update(onnx_export.file_sha256(path).encode())
    digest.update(onnx_export.source_key(base_model_dir()).encode())

    def export(out: Path) -> None:
        from qa.answering.reader_model import export_onnx

        sample = encode(tokenizer, "a question?", [Pair("A sentence.", "Title")], max_tokens)
        export_onnx(load_model(), sample, out)

    key = "reader-" + digest.hexdigest()[:16]
    return onnx_session(onnx_export.cached(cache_dir, key, "reader-fp32.onnx", export))


def _best_span(
    start: np.ndarray, end: np.ndarray, offsets: np.ndarray
) -> tuple[tuple[int, int] | None, float]:
    """The most likely (start <= end, at most MAX_ANSWER_TOKENS) span of the sentence and its
    probability among the sentence's spans."""
    valid = np.flatnonzero(offsets[:, 0] >= 0)
    if valid.size == 0:
        return None, 0.0
    s_idx = valid[:, None]
    e_idx = valid[None, :]
    # among the sentence's own spans: a "no answer" span's share (null_prob) is reported apart
    scores = start[s_idx] + end[e_idx] - _logsumexp(start[valid]) - _logsumexp(end[valid])
    ok = (e_idx >= s_idx) & (e_idx - s_idx < MAX_ANSWER_TOKENS)
    scores = np.where(ok, scores, -np.inf)
    flat = int(np.argmax(scores))
    i, j = valid[flat // valid.size], valid[flat % valid.size]
    return (int(offsets[i, 0]), int(offsets[j, 1])), float(np.exp(scores.flat[flat]))


_shared: dict[tuple[Path, Path | None], Reader] = {}
_shared_lock = threading.Lock()


def default_reader() -> Reader:
    """The reader the settings name (QA_READER_MODEL, else the bundled one), loaded once per
    process."""
    from qa.config import get_settings

    settings = get_settings()
    # ONNX Runtime unless PyTorch was asked for (QA_EMBED_BACKEND=torch, the reference)
    on_torch = settings.encoders.embed_backend.startswith("torch")
    key = (
        Path(settings.answering.reader_model or MODEL_DIR),
        None if on_torch else settings.encoders.model_cache_dir,
    )
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Reader(key[0], onnx_cache=key[1])
        return _shared[key]
