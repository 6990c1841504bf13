"""Embedding with Ray Data: a pool of encoder actors (`map_batches`) on this machine or a cluster.

`qa index ... --ray` wraps the local embedder in a `RayEmbedder`: chunks go to the actors, one
batch at a time, in the order the local path would batch them (longest first), so the vectors
are the local path's. Questions are still embedded locally. Ray is imported only here, only when
asked for. On a cluster, every node needs qa and its model package installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from qa.encoders.embedding import Embedder, default_embedder
from qa.errors import MissingExtra, StoreUnavailable

Factory = Callable[[], Embedder]  # builds the embedder inside each actor; must pickle by name


class _Encoder:
    """One Ray actor: its own copy of the model, loaded once."""

    def __init__(self, factory: Factory) -> None:
        self.embedder = factory()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.embed_batch([str(t) for t in batch["text"]])
        return {"i": batch["i"], "vector": vectors}


class RayEmbedder(Embedder):
    """The local embedder's model and name, with `embed` spread over Ray actors."""

    def __init__(
        self,
        local: Embedder,
        address: str | None = None,
        actors: int = 2,
        factory: Factory = default_embedder,
        num_cpus: int | None = None,
    ) -> None:
        ray_module()  # a missing extra is said before any work, not after the chunking
        self.local = local
        self.name, self.dim, self.max_tokens = local.name, local.dim, local.max_tokens
        self.address = address
        self.actors = actors
        self.factory = factory
        self.num_cpus = num_cpus

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.local.embed_batch(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.local.count_tokens(texts)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ray = ray_module()
        start_ray(self.address, self.num_cpus)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # as the local path batches
        items = [{"i": int(j), "text": texts[j]} for j in order]
        blocks = max(1, -(-len(items) // batch_size))  # whole batches per block
        ds = ray.data.from_items(items, override_num_blocks=min(blocks, 4 * self.actors))
        ds = ds.map_batches(
            _Encoder,
            fn_constructor_args=(self.factory,),
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_cpus=1,
        )
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        done = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            out[batch["i"]] = batch["vector"]
            done += len(batch["i"])
            if on_batch:
                on_batch(done, len(texts))
        return out


def ray_module() -> ModuleType:
    """Ray, or one clear line naming the extra to install when it is missing."""
    try:
        import ray
    except ImportError:
        raise MissingExtra("Embedding with Ray (qa index --ray)", "ray") from None
    return ray


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at `address`, or start a local one with this machine's cores."""
    ray = ray_module()

    if ray.is_initialized():
        return
    here = str(Path(__file__).resolve().parents[2])  # local workers import this qa
    path = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=num_cpus or os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": path}},
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise StoreUnavailable(f"cannot start {where}: {exc}; check --ray-address") from None
    if not address:
        ray.data.DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
