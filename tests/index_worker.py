"""Run by test_indexing's crash test in a subprocess: index a folder with a slow fake model."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from qa.indexing import index_paths
from tests.conftest import FakeEmbedder


class SlowFake(FakeEmbedder):
    def embed_batch(self, texts):
        time.sleep(0.03)
        return super().embed_batch(texts)


if __name__ == "__main__":
    corpus, index_dir = Path(sys.argv[1]), Path(sys.argv[2])
    print("started", flush=True)
    report = index_paths([corpus], index_dir, SlowFake(), batch_size=2)
    print(report.summary(), flush=True)
