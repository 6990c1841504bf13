"""Concurrent questions share one encoder call: a micro-batcher in front of `embed_batch`.

Callers block in `embed_query`; one worker thread takes whatever is queued, waits up to
`wait_s` for more (up to `max_batch`), encodes them in one call and hands each caller its row.
When the service is idle a question waits at most `wait_s`; under load, questions that arrive
while the encoder runs go together in the next call. Only encoding is shared: retrieval,
answering and any LLM call stay in each request's own thread, so nobody waits on another's LLM.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from qa.encoders.embedding import Embedder


class MicroBatcher:
    """Gathers single texts from many threads into batches for `encode`."""

    def __init__(
        self,
        encode: Callable[[list[str]], np.ndarray],
        max_batch: int = 32,
        wait_s: float = 0.002,
    ) -> None:
        self.encode, self.max_batch, self.wait_s = encode, max_batch, wait_s
        self._queue: queue.Queue[tuple[str, Future] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="qa-microbatch", daemon=True)
        self._worker.start()
        self.batches: list[int] = []  # sizes of the recent calls, for tests and benches

    def __call__(self, text: str) -> np.ndarray:
        """`text`'s vector, encoded together with whatever else is asked meanwhile."""
        future: Future = Future()
        self._queue.put((text, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    def _gather(self, first: tuple[str, Future]) -> tuple[list[tuple[str, Future]], bool]:
        items, stop = [first], False
        deadline = time.perf_counter() + self.wait_s
        while len(items) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is None:
                stop = True
                break
            items.append(item)
        return items, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items, stop = self._gather(first)
            live = [(t, f) for t, f in items if f.set_running_or_notify_cancel()]
            if live:
                try:
                    vectors = self.encode([t for t, _ in live])
                except BaseException as exc:  # every waiting caller gets the error
                    for _, f in live:
                        f.set_exception(exc)
                else:
                    for row, (_, f) in enumerate(live):
                        f.set_result(vectors[row])
                self.batches = [*self.batches[-999:], len(live)]
            if stop:
                return


class BatchedEmbedder(Embedder):
    """`inner` with its single questions micro-batched; batches and counts go straight through."""

    def __init__(self, inner: Embedder, max_batch: int = 32, wait_s: float = 0.002) -> None:
        self.inner = inner
        self.name, self.dim, self.max_tokens = inner.name, inner.dim, inner.max_tokens
        self.backend = inner.backend
        self.batcher = MicroBatcher(inner.embed_queries, max_batch, wait_s)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_batch(texts)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        return self.inner.embed(texts, batch_size, progress, on_batch)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.batcher(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def agreement(self) -> float:
        return self.inner.agreement()

    def warm_up(self) -> None:
        self.inner.warm_up()

    def runtime(self) -> dict:
        return self.inner.runtime()

    def query_runtime(self) -> dict:
        return self.inner.query_runtime()

    def close(self) -> None:
        self.batcher.close()
