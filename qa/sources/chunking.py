"""Split text into sentences and pack them into overlapping chunks that fit the encoder.

The sentence splitter is a single regular-expression pass with an abbreviation list: it keeps
"U.S.", "$1.25 billion", "Sept. 2025", decimals, initials and quotes inside one sentence. pysbd
does the same job, but took 3.1 s on the squad-dev corpus, a tenth of the encoder's own time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from qa.records import Chunk


class Span(NamedTuple):
    """Character offsets of a sentence, a block or a word: `text[start:end]`."""

    start: int
    end: int


_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr adm gov sen rep pres rev hon
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
    no nos vol vols fig figs p pp ch sec art ed eds inc ltd co corp bros dept univ assn est approx
    vs etc al cf viz ca e.g i.e u.s u.k u.n a.m p.m d.c n.y l.a""".split()
)

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"""([.!?…]+)(["'”’)\]]*)(\s+)(?=["'“‘(\[]?[A-Z0-9])""")
_LAST_WORD = re.compile(r"([\w.]+)$")
_PARAGRAPH = re.compile(r"\n\s*\n|\n")


def split_sentences(text: str) -> list[Span]:
    """Sentence spans (start, end) of `text`, without surrounding whitespace."""
    spans: list[Span] = []
    for block_start, block_end in _blocks(text):
        start = block_start
        block = text[block_start:block_end]
        for match in _BOUNDARY.finditer(block):
            if match.group(1) == "." and _is_abbreviation(block, match.start(1)):
                continue
            end = block_start + match.end(2)
            if end > start:
                spans.append(Span(start, end))
            start = block_start + match.end(3)
        if block_end > start:
            spans.append(Span(start, block_end))
    return spans


def _blocks(text: str) -> list[Span]:
    """Lines and paragraphs: a newline always ends a sentence."""
    blocks, pos = [], 0
    for match in _PARAGRAPH.finditer(text):
        blocks.append((pos, match.start()))
        pos = match.end()
    blocks.append((pos, len(text)))
    spans = []
    for start, end in blocks:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append(Span(start, end))
    return spans


_WORD_WINDOW = 64  # characters before a full stop searched for its word


def _is_abbreviation(block: str, dot: int) -> bool:
    """Whether the word before the full stop at `block[dot]` is an abbreviation or initials."""
    # The word is looked for in a window before the stop, not in all the text before it: a
    # search anchored at the end of a long paragraph would scan it whole for every sentence.
    match = _LAST_WORD.search(block, max(0, dot - _WORD_WINDOW), dot)
    if match and match.start() == max(0, dot - _WORD_WINDOW) > 0:
        match = _LAST_WORD.search(block, 0, dot)  # a word longer than the window
    if not match:
        return False
    word = match.group(1).lower().strip(".")
    if word in _ABBREVIATIONS:
        return True
    # Initials ("S." in "S Jaishankar" style names, "J. R. R.") and dotted acronyms ("N.A.T.O").
    return len(word) == 1 and word.isalpha() or bool(re.fullmatch(r"(?:\w\.)+\w", word))


@dataclass(frozen=True)
class ChunkingParams:
    """How text is packed into chunks; recorded in the index manifest."""

    max_tokens: int = 200
    overlap_sentences: int = 1


def chunk_text(
    doc_id: str,
    text: str,
    count_tokens: Callable[[Sequence[str]], list[int]],
    params: ChunkingParams,
) -> list[Chunk]:
    """Pack sentences into chunks of at most `params.max_tokens` word pieces, with overlap.

    A chunk never crosses a paragraph break once it is half full; a sentence longer than the
    budget is cut between words. Every chunk satisfies `text[chunk.start:chunk.end] == chunk.text`.
    """
    spans = _fit_sentences(text, split_sentences(text), count_tokens, params.max_tokens)
    if not spans:
        return []
    sizes = count_tokens([text[s:e] for s, e in spans])
    chunks: list[Chunk] = []
    i = 0
    while i < len(spans):
        j, used = i, 0
        while j < len(spans) and used + sizes[j] <= params.max_tokens:
            if j > i and used >= params.max_tokens // 2 and _paragraph_break(text, spans, j):
                break
            used += sizes[j]
            j += 1
        j = max(j, i + 1)
        start, end = spans[i].start, spans[j - 1].end
        chunks.append(
            Chunk(doc_id=doc_id, ord=len(chunks), start=start, end=end, text=text[start:end])
        )
        if j >= len(spans):
            break
        overlap = 0 if _paragraph_break(text, spans, j) else params.overlap_sentences
        i = max(j - overlap, i + 1)
    return chunks


def _paragraph_break(text: str, spans: list[Span], j: int) -> bool:
    return "\n\n" in text[spans[j - 1].end : spans[j].start]


def _fit_sentences(
    text: str,
    spans: list[Span],
    count_tokens: Callable[[Sequence[str]], list[int]],
    limit: int,
) -> list[Span]:
    """Cut any sentence over `limit` word pieces into pieces between words."""
    sizes = count_tokens([text[s:e] for s, e in spans])
    fitted: list[Span] = []
    for (start, end), size in zip(spans, sizes, strict=True):
        if size <= limit:
            fitted.append(Span(start, end))
            continue
        words = [
            Span(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])
        ]
        word_sizes = count_tokens([text[s:e] for s, e in words])
        piece_start, prev_end, used = words[0].start, words[0].end, 0
        for (ws, we), wsize in zip(words, word_sizes, strict=True):
            if used and used + wsize > limit - 2:
                fitted.append(Span(piece_start, prev_end))
                piece_start, used = ws, 0
            used += max(wsize, 1)
            prev_end = we
        fitted.append(Span(piece_start, prev_end))
    return fitted
