"""Merging ranked chunks into passages: passages of one document never overlap, whatever the
order the chunks ranked in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.indexing import index_paths
from qa.retrieval.search import Scored, merge_passages
from qa.sources.chunking import ChunkingParams
from qa.store import folder as store
from tests.conftest import FakeEmbedder


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    """Three documents of many small chunks, neighbours sharing a sentence."""
    folder = tmp_path_factory.mktemp("merge-corpus")
    for d, n in (("a", 30), ("b", 20), ("c", 10)):
        body = " ".join(f"Sentence {j} of document {d} says something short." for j in range(n))
        (folder / f"{d}.txt").write_text(body)
    index_dir = tmp_path_factory.mktemp("merge-index")
    report = index_paths([folder], index_dir, FakeEmbedder(), ChunkingParams(32, 1))
    assert report.ok
    snapshot = store.open_snapshot(index_dir)
    yield snapshot
    snapshot.close()


def rows_of(snap: store.Snapshot, doc_id: str) -> list[int]:
    return [row for row, _ in snap.doc_chunks(doc_id)]


def ranked(rows: list[int]) -> list[Scored]:
    """Chunks in the given order, best first, with falling scores."""
    return [Scored(r, 1.0 - i / 100, 0.5, 0.5) for i, r in enumerate(rows)]


def test_the_index_has_overlapping_neighbours(snap):
    chunks = snap.chunks(rows_of(snap, "a.txt"))
    assert len(chunks) >= 5 and snap.n_chunks >= 15
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_a_chunk_between_two_passages_joins_them(snap):
    """Chunks 0 and 2 rank above chunk 1: one passage 0..2, not "S1…S5" and "S5…S7"."""
    a = rows_of(snap, "a.txt")
    b = rows_of(snap, "b.txt")
    c0, c1, c2 = snap.chunks(a[:3])
    passages = merge_passages(snap, ranked([a[0], a[2], a[1], b[0]]), top_k=3)
    assert [(p.doc_id, p.start, p.end) for p in passages] == [
        ("a.txt", c0.start, c2.end),
        ("b.txt", snap.chunks([b[0]])[0].start, snap.chunks([b[0]])[0].end),
    ]
    assert passages[0].score == 1.0  # the group keeps its best chunk's score


def expected(snap: store.Snapshot, scored: list[Scored], top_k: int) -> list[tuple]:
    """Independent reading of the rule: the shortest prefix of the ranking whose chunks form
    `top_k` connected stretches (or all of it), each stretch ranked by its best chunk."""
    chunks = snap.chunks([s.row for s in scored])
    groups: list[list[int]] = []
    for m in range(1, len(scored) + 1):
        groups = []  # lists of ranks, joined where chunks overlap or touch
        for i in sorted(range(m), key=lambda i: (chunks[i].doc_id, chunks[i].start)):
            last = groups[-1] if groups else None
            if (
                last
                and chunks[last[0]].doc_id == chunks[i].doc_id
                and chunks[i].start <= max(chunks[j].end for j in last)
            ):
                last.append(i)
            else:
                groups.append([i])
        if len(groups) == top_k:
            break
    groups.sort(key=min)
    return [
        (
            chunks[g[0]].doc_id,
            min(chunks[j].start for j in g),
            max(chunks[j].end for j in g),
            round(scored[min(g)].score, 4),
        )
        for g in groups
    ]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), top_k=st.integers(1, 8))
def test_passages_of_one_document_never_overlap(snap, data, top_k):
    every_row = list(range(snap.n_chunks))
    order = data.draw(st.permutations(every_row))
    scored = ranked(order[: data.draw(st.integers(0, len(order)))])
    passages = merge_passages(snap, scored, top_k)

    assert len(passages) <= top_k
    assert [(p.doc_id, p.start, p.end, p.score) for p in passages] == expected(snap, scored, top_k)
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    for p in passages:
        assert snap.document(p.doc_id).text[p.start : p.end] == p.text
    by_doc: dict[str, list] = {}
    for p in passages:
        by_doc.setdefault(p.doc_id, []).append(p)
    for spans in by_doc.values():
        spans.sort(key=lambda p: p.start)
        assert all(a.end < b.start for a, b in zip(spans, spans[1:], strict=False))
