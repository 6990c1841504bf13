"""What the benches share: the encoder floor, latency statistics, and how a run is labelled.

Timings on a shared machine are noisy: each bench alternates floor and pipeline in one process
and reports the best and the median, with the load average beside them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.encoders.embedding import Embedder, MiniLMEmbedder
from qa.eval.metrics import percentile

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Say = Callable[[str], None]


def quiet(_: str) -> None:
    pass


def stderr_say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def latency_stats(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, mean, min and max of a list of timings."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": float(np.mean(values)) if len(values) else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
    }


def encoder_model(embedder: Embedder | None = None) -> SentenceTransformer:
    """The bare SentenceTransformer in fp32 PyTorch: the floor every bench uses, whatever
    runtime `embedder` has (QA_EMBED_BACKEND); its own instance when that is not torch."""
    if type(embedder) is MiniLMEmbedder:
        return embedder.model
    return _torch_floor().model


@lru_cache(maxsize=1)
def _torch_floor() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def context_line(r: dict[str, Any]) -> str:
    """When, where and under what load a bench ran: printed above its table."""
    i = r["info"]
    threads = f", torch threads {i['torch_threads']}" if "torch_threads" in i else ""
    return (
        f"{i['created_at']}, commit {i['commit']}, {i['machine']}{threads}, "
        f"load average at the end {i['load_avg_1_5_15']}"
    )


def verdict(ok: bool) -> str:
    return "(ok)" if ok else "(MISSED)"


def seconds_list(values: Sequence[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
