"""Sentence splitting and chunking: offsets are truth, on fixed cases and on random text."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from qa.sources.chunking import ChunkingParams, chunk_text, split_sentences


def word_count(texts):
    return [len(t.split()) for t in texts]


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_abbreviations_amounts_dates_and_quotes_stay_inside_one_sentence():
    text = (
        "The U.S. EXIM Bank approved $1.25 billion in Sept. 2025. Output grew 3.5 percent. "
        "“We look forward,” Baker said. Dr. Smith met S. Jaishankar at 5 p.m. today. Done!"
    )
    assert sentences(text) == [
        "The U.S. EXIM Bank approved $1.25 billion in Sept. 2025.",
        "Output grew 3.5 percent.",
        "“We look forward,” Baker said.",
        "Dr. Smith met S. Jaishankar at 5 p.m. today.",
        "Done!",
    ]


def test_a_closing_quote_ends_with_its_sentence():
    text = "He said “it is done.” Then he left."
    assert sentences(text) == ["He said “it is done.”", "Then he left."]


def test_newlines_and_paragraphs_end_sentences():
    assert sentences("Title line\n\nFirst para. Second one.\nNext line") == [
        "Title line",
        "First para.",
        "Second one.",
        "Next line",
    ]


def test_chunks_fit_the_budget_overlap_and_cover_the_text():
    text = " ".join(f"Sentence number {i} has six words." for i in range(40))
    chunks = chunk_text("d", text, word_count, ChunkingParams(max_tokens=30, overlap_sentences=1))
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end, "neighbouring chunks share a sentence"
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(len(c.text.split()) <= 30 for c in chunks)
    assert [c.ord for c in chunks] == list(range(len(chunks)))


def test_a_sentence_longer_than_the_budget_is_cut_between_words():
    text = "word " * 100 + "end."
    chunks = chunk_text("d", text.strip(), word_count, ChunkingParams(max_tokens=20))
    assert len(chunks) >= 5
    assert all(len(c.text.split()) <= 20 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_chunks_prefer_paragraph_breaks():
    para = "This sentence has exactly seven words here. " * 3
    text = (para.strip() + "\n\n") * 4
    chunks = chunk_text("d", text.strip(), word_count, ChunkingParams(max_tokens=40))
    assert all("\n\n" not in c.text for c in chunks)


ALPHABET = string.ascii_letters + string.digits + "  .!?,;:'\"“”’$%-\n" + "éü"
FRAGMENTS = st.sampled_from(
    ["U.S.", "$1.25 billion", "Sept. 2025", "3.14", "Dr.", "“Quote.”", "\n\n", "\n", " ", ". "]
)
TEXTS = st.lists(st.one_of(st.text(ALPHABET, max_size=40), FRAGMENTS), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_sentence_spans_are_ordered_trimmed_and_cover_every_word(text):
    spans = split_sentences(text)
    covered = [False] * len(text)
    last_end = 0
    for start, end in spans:
        assert last_end <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip() and piece
        for i in range(start, end):
            covered[i] = True
        last_end = end
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.integers(min_value=3, max_value=40), st.integers(min_value=0, max_value=3))
def test_every_chunk_is_its_documents_text_at_its_offsets(text, budget, overlap):
    chunks = chunk_text("doc", text, word_count, ChunkingParams(budget, overlap))
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text
    covered = [False] * len(text)
    for chunk in chunks:
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


def test_a_long_paragraph_splits_in_linear_time(monkeypatch):
    """One paragraph of 20,000 sentences (an upload without line breaks): each full stop looks
    back a few characters for its word, not over the whole paragraph (minutes, before). Checked
    by what is searched, not by a clock: no search before a stop spans more than the window."""
    from qa.sources import chunking

    searched: list[int] = []

    class Recording:
        def search(self, text: str, pos: int = 0, endpos: int | None = None):
            end = len(text) if endpos is None else endpos
            searched.append(end - pos)
            return pattern.search(text, pos, end)

    pattern = chunking._LAST_WORD
    monkeypatch.setattr(chunking, "_LAST_WORD", Recording())
    text = " ".join(
        f"Tower {i} has {i * 7} windows, says Dr. Lund of the U.S. office." for i in range(20_000)
    )
    spans = split_sentences(text)
    assert searched and max(searched) <= chunking._WORD_WINDOW
    assert len(spans) == 20_000  # "Dr." and "U.S." end no sentence
    assert text[spans[1].start : spans[1].end].startswith("Tower 1 has 7 windows")
