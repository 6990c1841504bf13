"""Check a generated answer sentence by sentence against the passages it cites.

A sentence of the model's reply is kept only when one quote of a passage it cites (a sentence,
or two neighbouring ones) supports it on three counts:
- **names and numbers**: every figure, quantity word ("billion") and name in the sentence occurs
  in the quote (or, for names, in the document title shown with the source). A 135M-parameter
  model happily writes "$9 trillion" next to a true sentence, and overlap scores barely move
  for one wrong token: this check does;
- **lexical**: at least `MIN_LEXICAL` of the sentence's content-word stems
  (`qa.language.lexical.terms`) are in the quote, and at most `MAX_UNSUPPORTED` are not;
- **semantic**: the cosine of the MiniLM embeddings of the sentence and the closest window of
  the quote is at least `MIN_COSINE`.
A sentence citing no source that exists in the prompt is checked against every source shown
(small models rarely write markers). The quote kept is returned with its document offsets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from qa.encoders.embedding import Embedder
from qa.language import lexical
from qa.llm.prompt import NOT_IN_SOURCES, Source
from qa.records import Passage
from qa.sources.chunking import Span, split_sentences

# Thresholds measured on hand-written claims about the seed article (tests/test_verify.py) and on
# SmolLM2-135M's answers to seed-news (`qa eval eval/sets/seed-news --smollm`).
# Faithful paraphrases score lexical >= 0.71 and cosine >= 0.49 (MiniLM is lukewarm between a
# short claim and a long sentence); invented facts reach cosine 0.85 and lexical 0.83 when they
# reuse the article's words, and are caught by the names and numbers check. So the cosine is a
# floor against sentences that share words but not meaning, not the main test.
MIN_LEXICAL = 0.6
# Stems: a long sentence can't hide an invented clause behind copied words. At 3, SmolLM's
# "…to support the construction of a new Reko Diq mine, which will provide 6,000 jobs…" passed;
# at 2 it goes, and so does one faithful paraphrase ("is lending money to support"): a removed
# true sentence costs less than a verified false one.
MAX_UNSUPPORTED = 2
MIN_COSINE = 0.45
MAX_QUOTE_SENTENCES = 2  # a claim may merge two neighbouring sentences of one passage
WINDOW_MIN_WORDS = 8  # see windows()
SHORTLIST = 4  # quotes per claim that get embedded, the best by the cheap checks

_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;–-]\s*\d+)*)\s*\]")
_MARKERS_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\s*\d[\d\s,;–-]*\])+)")
_NUMBER = re.compile(r"\d(?:[\d,.]*\d)?")
_QUANTITY_WORDS = lexical.NUMBER_WORDS | {"percent"}
# Capitalized only because they start a sentence: never required to be in the quote.
_SENTENCE_OPENERS = frozenset(
    "according however additionally furthermore moreover also yes overall notably meanwhile "
    "earlier later today currently first second third finally thus therefore so while although "
    "since based here there as in on at for from by with".split()
)
# "The answer is:", "The source for this answer is:": the claim, if any, follows.
_PREAMBLE = re.compile(
    r"^(?:the\s+)?(?:answer|sources?)(?:\s+(?:for|of)\s+(?:this|the)\s+(?:answer|question))?"
    r"\s+(?:is|are)\s*:\s*",
    re.I,
)
_REFUSALS = re.compile(
    r"sources? (?:do(?:es)?n[’']?t|do(?:es)? not) (?:say|mention|contain|answer|state)|"
    r"not (?:in|mentioned in|stated in) the sources|no (?:information|answer) in the sources",
    re.I,
)


@dataclass(frozen=True)
class Claim:
    """One sentence of the model's reply, without its [n] markers."""

    text: str
    cited: tuple[int, ...]  # source numbers the model gave that exist in the prompt
    refusal: bool = False  # the sentence says the sources don't answer


@dataclass(frozen=True, kw_only=True)
class Check:
    """How well the best quote supports a claim; `quote == document.text[start:end]`."""

    claim: Claim
    supported: bool
    passage: int  # index into the passages, -1 when no quote was found
    start: int
    end: int
    quote: str
    lexical: float
    cosine: float
    missing: tuple[str, ...]  # names and numbers of the claim absent from the quote
    unsupported: tuple[str, ...]  # content stems of the claim absent from the quote
    sentences: int  # in the quote

    @property
    def score(self) -> float:
        return round((self.lexical + self.cosine) / 2, 4)

    @property
    def reason(self) -> str:
        """Why the claim is not supported: the first check it fails ("" when supported)."""
        if self.supported:
            return ""
        if self.passage < 0:
            return "no quote"
        if self.missing:
            return "names or numbers not in the quote: " + ", ".join(self.missing)
        if self.lexical < MIN_LEXICAL or len(self.unsupported) > MAX_UNSUPPORTED:
            return "words not in the quote: " + ", ".join(self.unsupported)
        if self.cosine < MIN_COSINE:
            return f"meaning far from the quote (cosine {self.cosine:.2f})"
        return "says the sources don't answer"


def split_claims(reply: str, n_sources: int) -> list[Claim]:
    """The reply's sentences with the source numbers each cites ("[1]", "[1, 2]", "[1-2]")."""
    # "… in 2025. [2] Next" → "… in 2025 [2]. Next": the marker belongs to the sentence before.
    text = _MARKERS_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", reply.strip())
    claims = []
    for s, e in split_sentences(text):
        sentence = text[s:e]
        cited: list[int] = []
        for match in _MARKER.finditer(sentence):
            cited += [n for n in _numbers(match.group(1)) if 1 <= n <= n_sources and n not in cited]
        plain = _MARKER.sub("", sentence)
        plain = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(plain.split())).strip()
        plain = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", plain)  # list bullets
        plain = _PREAMBLE.sub("", plain)
        if not re.search(r"[^\W\d_]{2}", plain) or plain.endswith("?"):
            continue  # "2." left by a numbered list, or a question echoed back: no claim
        claims.append(Claim(plain, tuple(cited), bool(_REFUSALS.search(plain))))
    return claims


def is_refusal(reply: str) -> bool:
    """Whether the reply as a whole says the sources don't answer (and claims nothing else)."""
    claims = split_claims(reply, 0)
    if not claims:
        return reply.strip().lower() == NOT_IN_SOURCES.lower()
    return all(c.refusal for c in claims)


def _numbers(spec: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", spec):
        if re.fullmatch(r"\d+\s*[–-]\s*\d+", part):
            a, b = (int(x) for x in re.split(r"\s*[–-]\s*", part))
            out += list(range(a, b + 1)) if 0 <= b - a <= 20 else [a, b]
        elif part.strip().isdigit():
            out.append(int(part))
    return out


@dataclass(frozen=True, kw_only=True)
class _Quote:
    passage: int
    start: int  # document offsets
    end: int
    text: str
    width: int  # sentences


def verify(
    claims: Sequence[Claim],
    sources: Sequence[Source],
    passages: Sequence[Passage],
    embedder: Embedder,
) -> list[Check]:
    """For each claim, its best quote among the sentences of the sources it cites.

    A claim citing no source that exists is checked against every source shown. A quote is one
    sentence, or two neighbouring ones when no single sentence supports the claim.
    """
    by_n = {s.n: s for s in sources}
    shown = "\n".join(passages[s.passage].text[s.start : s.end] for s in sources)
    quotes_of = {
        s.n: _quotes(s, passages, 1) + _quotes(s, passages, MAX_QUOTE_SENTENCES) for s in sources
    }
    # The cheap checks for every quote; only the most promising few are embedded.
    shortlists = []
    for claim in claims:
        cited = [n for n in claim.cited if n in by_n] or list(by_n)
        quotes = dict.fromkeys(q for n in cited for q in quotes_of[n])
        rows = [_lexical_check(claim, q, passages[q.passage].title, shown) for q in quotes]
        rows.sort(key=lambda c: (not c.missing, c.lexical, c.sentences == 1), reverse=True)
        shortlists.append((claim, rows[:SHORTLIST]))
    texts = [c.text for c in claims]
    texts += [w for c, rows in shortlists for r in rows for w in windows(c.text, r.quote)]
    unique = list(dict.fromkeys(texts))
    vectors = dict(zip(unique, embedder.embed_batch(unique), strict=True)) if unique else {}
    checks = []
    for claim, rows in shortlists:
        scored = []
        for row in rows:
            cosine = max(
                float(vectors[claim.text] @ vectors[w]) for w in windows(claim.text, row.quote)
            )
            ok = (
                not row.missing
                and row.lexical >= MIN_LEXICAL
                and len(row.unsupported) <= MAX_UNSUPPORTED
                and cosine >= MIN_COSINE
                and not claim.refusal
            )
            scored.append(replace(row, supported=ok, cosine=cosine))
        # A supported single sentence beats a supported pair; then the better score wins.
        best = max(scored, key=lambda c: (c.supported, c.sentences == 1, c.score), default=None)
        checks.append(best or _no_quote(claim))
    return checks


def _lexical_check(claim: Claim, quote: _Quote, title: str, shown: str) -> Check:
    """Overlap, unsupported stems and missing names/numbers of a claim against one quote.

    The document title is shown in each source's header, so its words and names count as said.
    """
    claim_terms = set(lexical.terms(claim.text))
    said = set(lexical.terms(quote.text)) | set(lexical.terms(title))
    unsupported = tuple(sorted(claim_terms - said))
    overlap = 1 - len(unsupported) / len(claim_terms) if claim_terms else 0.0
    missing = tuple(
        sorted(
            t
            for t in key_tokens(claim.text, shown)
            if not _found(t, quote.text) and (t[0].isdigit() or not _found(t, title))
        )
    )
    return Check(
        claim=claim,
        supported=False,
        passage=quote.passage,
        start=quote.start,
        end=quote.end,
        quote=quote.text,
        lexical=overlap,
        cosine=0.0,
        missing=missing,
        unsupported=unsupported,
        sentences=quote.width,
    )


def _no_quote(claim: Claim) -> Check:
    """The check of a claim that no quote was found for."""
    return Check(
        claim=claim,
        supported=False,
        passage=-1,
        start=0,
        end=0,
        quote="",
        lexical=0.0,
        cosine=0.0,
        missing=(),
        unsupported=(),
        sentences=0,
    )


def _quotes(source: Source, passages: Sequence[Passage], width: int) -> list[_Quote]:
    """Runs of `width` consecutive sentences inside the shown part of the source's passage."""
    p = passages[source.passage]
    spans = [s for s in split_sentences(p.text) if s.start >= source.start and s.end <= source.end]
    out = []
    for i in range(len(spans) - width + 1):
        s, e = spans[i].start, spans[i + width - 1].end
        out.append(
            _Quote(
                passage=source.passage,
                start=p.start + s,
                end=p.start + e,
                text=p.text[s:e],
                width=width,
            )
        )
    return out


def windows(claim: str, quote: str) -> list[str]:
    """The quote, and runs of its words about 1.5 times the claim's length, half overlapping.

    A short claim drawn from one clause of a 60-word sentence has a low cosine with the whole
    sentence (the rest of it is about other things); its closest window measures the match.
    """
    spans = [Span(*m.span()) for m in re.finditer(r"\S+", quote)]
    size = max(WINDOW_MIN_WORDS, math.ceil(1.5 * len(claim.split())))
    if len(spans) <= size:
        return [quote]
    step = max(1, size // 2)
    starts = range(0, len(spans) - size + step, step)
    return [quote] + [
        quote[spans[i].start : spans[min(i + size, len(spans)) - 1].end] for i in starts
    ]


def key_tokens(sentence: str, context: str = "") -> set[str]:
    """The figures, quantity words and names in `sentence` that a supporting quote must hold.

    A capitalized first word counts as a name unless it is a stopword, a usual sentence opener,
    or appears in lower case in `context` (the sources): "Washington said" needs Washington,
    "Earlier" or "Baker" as opener follow the same rule.
    """
    required = {_norm_number(m.group()) for m in _NUMBER.finditer(sentence)}
    words = lexical.words(sentence)
    required |= {w for w in words if w in _QUANTITY_WORDS}
    lower_context = set(re.findall(r"\b[a-z][\w’'-]*", context))
    first = re.match(r"\W*", sentence)
    first_at = first.end() if first else 0
    for match in lexical.CAPITALISED.finditer(sentence):
        word = _norm_name(match.group())
        if not word or word in lexical.STOPWORDS or word.isdigit():
            continue
        if match.start() == first_at and (word in _SENTENCE_OPENERS or word in lower_context):
            continue
        required.add(word)
    return required


def _found(token: str, quote: str) -> bool:
    """Whether a required token occurs in the quote: numbers exactly, names in any form."""
    if token[0].isdigit():
        return token in {_norm_number(m.group()) for m in _NUMBER.finditer(quote)}
    found = re.findall(r"[\w’'.&-]+", quote)
    # Whole ("d’affaires", "55-nation") and in parts ("affaires", "nation").
    words = {_norm_name(w) for w in found + [p for w in found for p in re.split(r"[’'-]", w)]}
    if token in words:
        return True
    # Another form of the same name: "Pakistani" / "Pakistan", "American" / "America".
    stem = token[: max(4, len(token) - 3)]
    return len(token) > 3 and any(w.startswith(stem) for w in words)


def _norm_number(text: str) -> str:
    text = text.replace(",", "")
    return text.rstrip(".").rstrip("0").rstrip(".") if "." in text else text


def _norm_name(word: str) -> str:
    word = word.lower().replace("’", "'").strip(".'-&")
    word = re.sub(r"'s$", "", word)
    return word.replace(".", "")
