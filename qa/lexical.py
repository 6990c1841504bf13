"""Word-level text processing shared by BM25 and answer scoring: tokens, stems, stopwords."""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"\w+(?:[.'’]\w+)*", re.UNICODE)

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves also did does many much whose
    s t d ll m o re ve y""".split()
)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased words, keeping "1.25", "u.s" and "o'brien" whole."""
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def terms(text: str) -> list[str]:
    """Stemmed content words: what BM25 indexes and what answer scoring matches on."""
    return _stemmer().stemWords([w for w in words(text) if w not in STOPWORDS])


def stem(word: str) -> str:
    """The stem of one lower-case word (stopwords too)."""
    return _stemmer().stemWord(word)
