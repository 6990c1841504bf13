"""Passage re-ranking by the trained reader (QA_RERANK): a cross-encoder pass after hybrid
retrieval, as peers add one, read cheaply.

The reader reads one sentence of each of the first `RERANK_DEPTH` passages: the one the rules
rank first in it (`answering.score_sentences`; a passage's own order does not depend on the
other passages). The passages are ordered by the reader's probability for that sentence plus
`RERANK_WEIGHT` x their fused score (min-max scaled over the re-ranked ones); the rest keep their
fused order. Their `score` stays the fused score. Measured on the dev sets (docs/reader.md,
"Re-ranking cheaply"): recall@1 rises, the answers stay the same, and it costs one read per
passage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qa import answering, retrieval
from qa.models import Passage
from qa.reader import Reads

RERANK_DEPTH = 5  # passages re-ranked (one read each); deeper lists gained less at rank 1
RERANK_WEIGHT = 0.3  # of the fused score, scaled 0-1; measured on squad-dev and seed-news


def rerank(
    question: str,
    query: str,
    passages: Sequence[Passage],
    idf: answering.Idf,
    reader: Reads,
    depth: int = RERANK_DEPTH,
    weight: float = RERANK_WEIGHT,
) -> list[Passage]:
    """`passages` with the first `depth` in the reader's order, best first."""
    head, tail = list(passages[:depth]), list(passages[depth:])
    if len(head) < 2:
        return [*head, *tail]
    first: dict[int, answering.Candidate] = {}
    for cand in answering.score_sentences(question, head, idf, query=query):
        first.setdefault(cand.passage, cand)
    read = [i for i in range(len(head)) if i in first]  # a passage may hold no sentence
    readings = reader.read(question, answering.reader_pairs([first[i] for i in read], head))
    prob = np.zeros(len(head))
    prob[read] = [r.prob for r in readings]
    scaled = retrieval.minmax(np.array([p.score for p in head]))
    order = np.argsort(-(prob + weight * scaled), kind="stable")
    return [*(head[i] for i in order), *tail]
