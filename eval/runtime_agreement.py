"""How close each encoder runtime's vectors are to the torch fp32 model's, on real text: the
model card's prose (shipped with the model) and the seed article's chunks, each text embedded in
batches of 8 (as indexing does) and alone. The bounds each runtime must meet are
`qa.encoders.embedding.TOLERANCES`; this prints the measured mean and minimum cosine beside them.

    PYTHONPATH=. .venv/bin/python eval/runtime_agreement.py [torch torch-bf16 onnx onnx-int8]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from qa.encoders.embedding import TOLERANCES, MiniLMEmbedder, agreement_sample, make_embedder
from qa.sources.chunking import ChunkingParams, chunk_text

SEED = Path(__file__).resolve().parents[2] / "shared/data/seed/reko-diq-exim-2026-02-06.txt"


def main(backends: list[str]) -> None:
    reference = MiniLMEmbedder()
    texts = agreement_sample()
    if SEED.is_file():
        chunks = chunk_text("seed", SEED.read_text(), reference.count_tokens, ChunkingParams())
        texts += [c.text for c in chunks]
    expected = reference.embed(texts, batch_size=8)
    for backend in backends:
        embedder = make_embedder(backend)
        bound = TOLERANCES[backend]
        for how, vectors in (
            ("batched", embedder.embed(texts, batch_size=8)),
            ("alone", np.vstack([embedder.embed_batch([t]) for t in texts])),
        ):
            cos = np.sum(vectors * expected, axis=1)
            print(
                f"{backend:11s} {how:8s} {len(texts)} texts: mean {cos.mean():.6f} "
                f"min {cos.min():.6f} (bounds: mean >= {bound.mean}, min >= {bound.min})"
            )


if __name__ == "__main__":
    main(sys.argv[1:] or list(TOLERANCES))
