"""Extractive answers: the best-supported sentences of the retrieved passages, each cited.

No model invents anything here. Sentences are scored by how much of the question they cover
(idf-weighted stems), whether they hold the kind of thing asked for (a count of the things a
"how many" asks about, a sum of money for "how much did it cost", a date for "when"; see
`answer_types`), and the rank of their passage. A sentence answers only where the question's
names and figures stand in it or next to it: "How many private schools are there in the United
States?" is not answered by "there are 88 private schools in New Zealand". When no sentence
covers the question's key terms, near its names, with the asked-for kind of answer, the answer
abstains.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from qa.answering import confidence
from qa.answering.reader import Pair, Reading, Reads, pairs_in
from qa.language import answer_types, lexical
from qa.language.answer_types import OTHER, Asked
from qa.language.question import Question
from qa.records import Answer, Citation, Passage
from qa.sources.chunking import split_sentences
from qa.store.interface import IndexView

# Weights and thresholds, measured on the squad-dev and seed-news dev sets (docs/evaluation.md).
W_COVERAGE, W_TYPE, W_PASSAGE = 0.6, 0.2, 0.2
EXTRA_SENTENCE_RATIO = 0.8  # a 2nd/3rd sentence joins when it scores this close to the best
MAX_SENTENCES = 3
PRIOR_CHUNKS = 100  # idf smoothing, see Idf
CONTEXT_CREDIT = 0.5  # a question term found near the sentence rather than in it
NAMES_BEFORE, NAMES_AFTER = 2, 1  # sentences around an answer where its names may stand
NAME_IDF = 4.0  # names rarer than this (in <~2% of chunks, with the prior) must stand there
MIN_COVERAGE = 0.4  # below this share of the question's weight, the sources don't say
# The reader (qa/answering/reader.py): calibrated on the dev sets, see docs/reader.md
READER_CANDIDATES = 8  # sentences `read_sentences` reads per question, best by the rules first
READER_MIN_SPAN_PROB = 0.3  # a short answer only when the reader's span is this likely

# Words that ask for something rather than say what it is about: never required to be covered.
_FILLER = frozenset(
    lexical.terms(
        "name named called call type kind year years date time number amount many much percent "
        "percentage term known refer referred used use person people happen happened one"
    )
)


@dataclass
class Idf:
    """Inverse document frequency of stems over the index's chunks (the store's BM25 counts)."""

    snapshot: IndexView
    _counts_of: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __call__(self, term: str) -> float:
        """Smoothed idf: `PRIOR_CHUNKS` imaginary chunks keep a small corpus's topic words
        (in every chunk of a one-article index) from weighing nothing; an unseen word counts
        as seen once, since it is as often a paraphrase as a missing fact."""
        count, n = self._counts(term)
        count = max(count, 1)
        return math.log(1 + (n + PRIOR_CHUNKS - count + 0.5) / (count + 0.5))

    def _counts(self, term: str) -> tuple[int, int]:
        counts = self._counts_of.get(term)
        if counts is None:  # asked once per term: a store may count over the network
            counts = self._counts_of[term] = self.snapshot.term_df(term)
        return counts


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One sentence of a retrieved passage, located in its document."""

    passage: int  # index into the passages
    start: int  # offsets into the document text
    end: int
    text: str
    score: float
    coverage: float
    typed: bool
    named: bool  # the question's names stand in the sentence, next to it, or in the title


def answer(
    question: Question,
    passages: Sequence[Passage],
    idf: Idf,
    min_coverage: float | None = None,
) -> Answer:
    """Compose a cited extractive answer from `passages`, or abstain."""
    candidates = score_sentences(question, passages, idf)
    missing = missing_terms(question, passages)
    return _by_rules(question, passages, candidates, missing, min_coverage)


def _by_rules(
    question: Question,
    passages: Sequence[Passage],
    candidates: Sequence[Candidate],
    missing: set[str],
    min_coverage: float | None,
) -> Answer:
    """`answer` from the sentences already ranked by the rules and the names already missed."""
    threshold = MIN_COVERAGE if min_coverage is None else min_coverage
    if not candidates or not supported(candidates[0], question.asked, threshold) or missing:
        why = why_unsupported(question, candidates, threshold, missing)
        return abstain(question, passages, why)
    best = candidates[0]
    chosen = [best] + [
        c for c in candidates[1 : MAX_SENTENCES * 3] if c.score >= EXTRA_SENTENCE_RATIO * best.score
    ][: MAX_SENTENCES - 1]
    return compose(question.query, passages, chosen, short_answer(question, best.text))


@dataclass(frozen=True)
class ReaderPolicy:
    """How the reader's short answer is taken (`with_reader_span`): only when its span is at
    least `min_span_prob` likely."""

    min_span_prob: float = READER_MIN_SPAN_PROB


def answer_with_reader_span(
    question: Question,
    passages: Sequence[Passage],
    idf: Idf,
    reader: Reads,
    policy: ReaderPolicy | None = None,
    min_coverage: float | None = None,
    evidence: bool = True,
) -> Answer:
    """The rules' `answer`, with the short answer the reader reads in the sentence they chose
    (see `with_reader_span`). The sentences are ranked once for both. With `evidence`, the
    answer carries the signals its confidence is made of (`qa/answering/confidence.py`), from
    the same reading: reading the next sentences too, or the encoder's closeness of question and
    quote,
    bought nothing measurable (docs/confidence.md)."""
    ranked = score_sentences(question, passages, idf)
    missing = missing_terms(question, passages)
    rules = _by_rules(question, passages, ranked, missing, min_coverage)
    if rules.abstained:
        return rules
    policy = policy or ReaderPolicy()
    best = ranked[:1]
    read = ReadSentences(best, reader.read(question.text, reader_pairs(best, passages)), missing)
    answer = with_reader_span(rules, read, policy)
    if not evidence:
        return answer
    signals = confidence.evidence(
        question,
        passages,
        read.ranked,
        read.readings,
        answer.short_answer,
        rules.short_answer,
        idf,
    )
    return replace(answer, evidence=signals)


@dataclass(frozen=True)
class ReadSentences:
    """The reader's view of a question's best sentences (see `read_sentences`)."""

    ranked: list[Candidate]  # best by the rules first
    readings: list[Reading]  # one per ranked sentence
    missing: set[str]  # the question's names that no passage mentions


def read_sentences(
    question: Question,
    passages: Sequence[Passage],
    idf: Idf,
    reader: Reads,
    candidates: int = READER_CANDIDATES,
) -> ReadSentences:
    """Rank the sentences by the rules and have the reader read the best `candidates`."""
    ranked = score_sentences(question, passages, idf)[:candidates]
    readings = reader.read(question.text, reader_pairs(ranked, passages))
    return ReadSentences(ranked, readings, missing_terms(question, passages))


def with_reader_span(answer: Answer, read: ReadSentences, policy: ReaderPolicy) -> Answer:
    """The rules' `answer` with the reader's short answer from the sentence the rules chose
    (read first: `read.ranked` is the rules' order) when the reader's span is likely enough, else
    the rules' own short answer. Sentences, citations and abstention stay the rules'."""
    if answer.abstained or not read.ranked:
        return answer
    top = read.readings[0]
    if top.span is None or top.span_prob < policy.min_span_prob:
        return answer
    short = read.ranked[0].text[top.span[0] : top.span[1]].strip()
    return replace(answer, short_answer=short or answer.short_answer)


def reader_pairs(ranked: Sequence[Candidate], passages: Sequence[Passage]) -> list[Pair]:
    """The candidates as the reader reads them, with their titles and neighbours; each passage
    is split into sentences once."""
    located: dict[int, dict[tuple[int, int], Pair]] = {}
    out = []
    for cand in ranked:
        if cand.passage not in located:
            p = passages[cand.passage]
            spans = split_sentences(p.text)
            pairs = pairs_in(p.text, p.title, spans)
            located[cand.passage] = {
                (p.start + s, p.start + e): pair for (s, e), pair in zip(spans, pairs, strict=True)
            }
        title = passages[cand.passage].title
        out.append(located[cand.passage].get((cand.start, cand.end), Pair(cand.text, title)))
    return out


def compose(
    query: str,
    passages: Sequence[Passage],
    chosen: Sequence[Candidate],
    short: str | None,
) -> Answer:
    """The answer made of the `chosen` sentences, each quoted verbatim and cited."""
    quoted: list[Quoted] = []
    for cand in chosen:
        p = passages[cand.passage]
        if any(
            q.passage == cand.passage and q.start <= cand.start and cand.end <= q.end
            for q in quoted
        ):
            continue  # the sentence an earlier quote went back to
        start = _antecedent_start(cand, p)
        if any(q.passage == cand.passage and q.start < cand.end and start < q.end for q in quoted):
            start = cand.start  # the sentence before is quoted already
        text = p.text[start - p.start : cand.end - p.start]
        quoted.append(
            Quoted(
                said=text,
                passage=cand.passage,
                start=start,
                end=cand.end,
                quote=text,
                score=round(cand.score, 4),
            )
        )
    return cited(query, passages, quoted, short)


@dataclass(frozen=True, kw_only=True)
class Quoted:
    """One sentence of an answer and the quote that backs it: `passages[passage]`'s document
    text at `start:end` (offsets into the document)."""

    said: str  # the sentence as the answer says it (the quote itself, or a generated claim)
    passage: int  # index into the passages
    start: int
    end: int
    quote: str
    score: float


def cited(
    query: str, passages: Sequence[Passage], quoted: Sequence[Quoted], short: str | None
) -> Answer:
    """The answer made of the `quoted` sentences, each followed by the number of its quote; the
    quotes are cited in the order of first use, one citation per quote."""
    numbers: dict[tuple[str, int, int], int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for q in quoted:
        p = passages[q.passage]
        key = (p.doc_id, q.start, q.end)
        if key not in numbers:
            numbers[key] = len(numbers) + 1
            citations.append(
                Citation(
                    n=numbers[key],
                    doc_id=p.doc_id,
                    title=p.title,
                    date=p.date,
                    source=p.source,
                    quote=q.quote,
                    start=q.start,
                    end=q.end,
                    score=q.score,
                )
            )
        parts.append(f"{q.said} [{numbers[key]}]")
    return Answer(
        answer=" ".join(parts),
        short_answer=short,
        abstained=False,
        query=query,
        citations=citations,
        passages=list(passages),
    )


_PRONOUN_OPENING = re.compile(r"[“\"'‘(]?(?:It|Its|This|These|They|Their|He|His|She|Her)\b")


def _antecedent_start(cand: Candidate, passage: Passage) -> int:
    """Where the quote of `cand` starts: at the sentence before it when it opens with a pronoun
    ("It has been characterized as ..."), so the quote says what "it" is; else at itself."""
    if not _PRONOUN_OPENING.match(cand.text):
        return cand.start
    before = [s for s, e in split_sentences(passage.text) if passage.start + e <= cand.start]
    return passage.start + before[-1] if before else cand.start


def abstain(question: Question, passages: Sequence[Passage], why: str | None = None) -> Answer:
    """An honest "not in the sources", with the closest passages as related reading; `why`
    (from `why_unsupported`) tells the user what was looked for and not found."""
    topic = question.text.strip().rstrip("?").strip()
    text = f"The sources don't say. Nothing in the indexed documents answers “{topic}”"
    text += f": {why}." if why else "."
    if passages:
        text += " The closest passages are listed below as related reading."
    return Answer(
        answer=text,
        short_answer=None,
        abstained=True,
        query=question.query,
        citations=[],
        passages=list(passages),
        tier=confidence.NOT_IN_SOURCES,
    )


_LOOKED_FOR = {
    answer_types.DATE: "a date",
    answer_types.DURATION: "a length of time",
    answer_types.SIZE: "a length or a length of time",
    answer_types.LENGTH: "a length or distance",
    answer_types.MONEY: "a sum of money",
    answer_types.PERCENT: "a percentage or share",
    answer_types.COUNT: "a number",
    answer_types.NUMBER: "a number",
    answer_types.PERSON: "a name",
    answer_types.PLACE: "a place",
}


def why_unsupported(
    question: Question,
    candidates: Sequence[Candidate],
    min_coverage: float,
    missing: set[str],
) -> str | None:
    """What the passages lack, in words a user can act on, for an abstention."""
    kind = question.asked
    if missing:
        return "the passages never mention " + _quoted(_as_written(question, missing))
    covering = [c for c in candidates if c.coverage >= min_coverage]
    if not covering:
        return "no sentence covers enough of the question's words"
    if not any(c.named for c in covering):
        return None  # its names stand far from every sentence that covers it: nothing crisp to say
    if kind.kind != OTHER and not any(c.typed for c in covering if c.named):
        if kind.role:
            return f"no passage names the {' '.join(kind.role)}"
        looked_for = _LOOKED_FOR[kind.kind]
        if kind.counted:
            looked_for += " of " + " ".join(kind.counted)
        return f"no passage gives {looked_for} for it"
    return None


def _as_written(question: Question, words: set[str]) -> list[str]:
    """`words` (lower-cased, of `Question.must_match`) as the question spells them, in its
    order."""
    found = [w for w in dict.fromkeys(question.names) if w.lower() in words]
    return found or sorted(words)


def _quoted(items: list[str]) -> str:
    quoted = [f"“{w}”" for w in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def supported(best: Candidate, kind: Asked, min_coverage: float) -> bool:
    """Whether the best sentence covers the question, near its names, and holds the asked-for
    kind of answer: no rule vetoes it."""
    if best.coverage < min_coverage or not best.named:
        return False
    return kind.kind == OTHER or best.typed


def missing_terms(question: Question, passages: Sequence[Passage]) -> set[str]:
    """The question's names and numbers (`Question.must_match`) that appear in none of the
    passages."""
    text = " ".join(p.title + " " + p.text for p in passages)
    return unmentioned(question.must_match, text)


def unmentioned(names: AbstractSet[str], text: str) -> set[str]:
    """Those of `names` (of `Question.must_match`) that `text` does not mention."""
    if not names:
        return set()
    words = lexical.words(text)
    found = set(words)
    initials = "".join(w[0] for w in words)  # in text order, for acronyms
    return {w for w in names if not _mentioned(w, found, initials)}


def _mentioned(word: str, found: set[str], initials: str) -> bool:
    """A name is mentioned as itself, another form of it ("Indian", "India"), inside a compound
    ("SkyDrive"), or as an acronym's words ("MoU", "Memorandum of Understanding")."""
    word = re.sub(r"['’]s$", "", word)
    parts = lexical.words(word)
    if len(parts) > 1:  # "55-nation", "Gay-Lussac"
        return all(_mentioned(part, found, initials) for part in parts)
    if word in found or any(ch.isdigit() for ch in word):
        return word in found
    stem = word[: max(4, len(word) - 3)]
    if any(w.startswith(stem) or (len(word) >= 4 and word in w) for w in found):
        return True
    return 2 <= len(word) <= 5 and word in initials


def score_sentences(question: Question, passages: Sequence[Passage], idf: Idf) -> list[Candidate]:
    """Every sentence of the passages, best first.

    A question term found in the sentence counts fully; one found only elsewhere in the same
    passage or in the document title counts `CONTEXT_CREDIT` (the sentence may say "it").
    Terms that a follow-up's rewritten query added count half. Sentences with the question's
    rare names and figures nearby (`NAMES_BEFORE`/`NAMES_AFTER` sentences, or the title) come
    first.
    """
    kind = question.asked
    weights = {t: idf(t) for t in dict.fromkeys(question.lemma_terms) if t not in _FILLER}
    for t in question.query_lemma_terms:
        if t not in weights and t not in _FILLER:
            weights[t] = 0.5 * idf(t)
    total = sum(weights.values()) or 1.0
    q_words = set(question.words)
    candidates = []
    names = {n for n in question.must_match if _name_idf(n, idf) >= NAME_IDF}
    for i, p in enumerate(passages):
        around = set(lexical.lemma_terms(p.title + " " + p.text))
        context = sum(w for t, w in weights.items() if t in around)
        sentences = split_sentences(p.text)
        for j, (s, e) in enumerate(sentences):
            text = p.text[s:e]
            lo = sentences[max(0, j - NAMES_BEFORE)].start
            hi = sentences[min(len(sentences) - 1, j + NAMES_AFTER)].end
            named = not unmentioned(names, p.title + " " + p.text[lo:hi])
            s_terms = set(lexical.lemma_terms(text))
            inside = sum(w for t, w in weights.items() if t in s_terms)
            coverage = (inside + CONTEXT_CREDIT * (context - inside)) / total
            typed = any(
                not set(lexical.words(text[a:b])) <= q_words
                for a, b in answer_types.spans(text, kind)
            )
            score = W_COVERAGE * coverage + W_TYPE * typed + W_PASSAGE * p.score
            candidates.append(
                Candidate(
                    passage=i,
                    start=p.start + s,
                    end=p.start + e,
                    text=text,
                    score=score,
                    coverage=coverage,
                    typed=typed,
                    named=named,
                )
            )
    candidates.sort(key=lambda c: (not c.named, -c.score))
    return candidates


def short_answer(question: Question, sentence: str) -> str | None:
    """The span of `sentence` that answers a short-fact question, if one stands out.

    Among the spans of the asked-for kind that the question does not already contain, the one
    nearest to the question's words wins: in "$2 billion ... 6,000 jobs in the US and 7,500
    jobs in Balochistan", "how many jobs in Balochistan" picks 7,500.
    """
    q_words = set(question.words)
    q_terms = set(question.lemma_terms) - _FILLER
    spans = [
        (a, b)
        for a, b in answer_types.spans(sentence, question.asked)
        if not set(lexical.words(sentence[a:b])) <= q_words
    ]
    if not spans:
        return None
    hits = [m.start() for m in re.finditer(r"\w+", sentence) if _stem(m.group()) in q_terms]

    def closeness(span: tuple[int, int]) -> float:
        a, b = span
        gaps = [max(a - h, h - b, 0) for h in hits]
        return sum(1 / (1 + g / 20) for g in gaps)  # g in characters

    a, b = max(spans, key=closeness)
    return sentence[a:b].strip()


def _stem(word: str) -> str:
    found = lexical.terms(word)
    return found[0] if found else ""


def _name_idf(name: str, idf: Idf) -> float:
    """How rare a name is in the index: frequent ones ("US", "TV", "World War") set a scene
    rather than name the subject, and a sentence need not repeat them."""
    return max((idf(t) for t in lexical.terms(name)), default=math.inf)
