"""A question, read once: what retrieval, the rules, the reader and the prompt need of it.

`Question.read` works out the asking part, the asked-for kind of answer, the names, terms and
figures of a question a single time; every later step reads these fields instead of working
them out again from the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.language import answer_types, lexical
from qa.language.answer_types import Asked

_FIGURE = re.compile(r"\d[\d,.]*")


@dataclass(frozen=True, kw_only=True)
class Question:
    """A question and what it asks for. Build it with `Question.read`."""

    text: str  # as asked
    query: str  # what retrieval searched: the text, or a follow-up with an earlier turn's names
    asking: str  # the sentence that asks (`answer_types.asking_part`)
    asked: Asked  # the kind of answer asked for, and the words it must be about
    words: tuple[str, ...]  # `lexical.words` of the text, in order
    names: tuple[str, ...]  # `lexical.names` of the text: names, acronyms, figures as spelled
    # The asking part's names, lower-cased: what a supporting passage must contain. People
    # paraphrase verbs and nouns, but rarely a name or a figure; when "PCP", "Rhine" or "2020" is
    # nowhere in the passages, the sources are about something else. A preamble of context
    # before the question ("A senior American diplomat in Islamabad said ... Who is America's
    # Charge d'Affaires in Pakistan?") is the asker's, and the sources need not repeat it.
    must_match: frozenset[str]
    terms: tuple[str, ...]  # `lexical.terms` of the text: stems of its content words
    lemma_terms: tuple[str, ...]  # `lexical.lemma_terms` of the text (irregular verbs as base)
    query_lemma_terms: tuple[str, ...]  # `lexical.lemma_terms` of the query
    figures: tuple[str, ...]  # the runs of digits ("1.25", "2,000")

    @classmethod
    def read(cls, text: str, query: str | None = None) -> Question:
        """Analyse `text` (searched as `query`, by default the text itself)."""
        asking = answer_types.asking_part(text)
        query = text if query is None else query
        names = tuple(lexical.names(text))
        asking_names = names if asking == text else lexical.names(asking)
        lemma_terms = tuple(lexical.lemma_terms(text))
        return cls(
            text=text,
            query=query,
            asking=asking,
            asked=answer_types.asked_in(asking),
            words=tuple(lexical.words(text)),
            names=names,
            must_match=frozenset(word.lower() for word in asking_names),
            terms=tuple(lexical.terms(text)),
            lemma_terms=lemma_terms,
            query_lemma_terms=lemma_terms if query == text else tuple(lexical.lemma_terms(query)),
            figures=tuple(_FIGURE.findall(text)),
        )

    @property
    def kind(self) -> str:
        """The asked-for kind of answer (`answer_types`: date, count, person..., or other)."""
        return self.asked.kind
