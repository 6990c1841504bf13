"""Word-level text processing shared by BM25, answer scoring and quote checks: tokens, stems,
stopwords, number words, and the names, acronyms and figures a question or a sentence holds."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import Stemmer

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


# Irregular past forms -> base, so "left" meets "leave" and "won" meets "win" when sentences are
# scored against a question (the stemmer only strips regular endings).
IRREGULAR = dict(
    pair.split(":")
    for pair in """arose:arise arisen:arise ate:eat eaten:eat beat:beat became:become began:begin
    begun:begin bent:bend bit:bite bitten:bite bled:bleed blew:blow blown:blow bore:bear
    born:bear borne:bear bought:buy bred:breed brought:bring built:build burnt:burn
    caught:catch chose:choose chosen:choose clung:cling came:come crept:creep dealt:deal
    did:do done:do drew:draw drawn:draw drank:drink drunk:drink drove:drive driven:drive
    dug:dig fed:feed fell:fall fallen:fall felt:feel fled:flee flew:fly flown:fly
    forbade:forbid forgave:forgive forgiven:forgive forgot:forget forgotten:forget
    fought:fight froze:freeze frozen:freeze gave:give given:give got:get gotten:get
    grew:grow grown:grow hung:hang heard:hear held:hold hid:hide hidden:hide kept:keep
    knew:know known:know laid:lay lain:lie led:lead left:leave lent:lend lost:lose made:make
    meant:mean met:meet overcame:overcome paid:pay ran:run rang:ring rode:ride ridden:ride
    rose:rise risen:rise sang:sing sung:sing sank:sink sunk:sink sat:sit saw:see seen:see
    said:say sought:seek sold:sell sent:send shook:shake shaken:shake shone:shine shot:shoot
    shrank:shrink slew:slay slain:slay slept:sleep slid:slide spoke:speak spoken:speak
    sped:speed spent:spend spun:spin stole:steal stolen:steal stood:stand stuck:stick
    struck:strike stricken:strike strove:strive swore:swear sworn:swear swept:sweep
    swam:swim swum:swim swung:swing taught:teach took:take taken:take tore:tear torn:tear
    told:tell thought:think threw:throw thrown:throw trod:tread understood:understand
    undertook:undertake undertaken:undertake underwent:undergo undergone:undergo
    upheld:uphold woke:wake woken:wake wore:wear worn:wear wove:weave woven:weave wept:weep
    won:win wound:wind withdrew:withdraw withdrawn:withdraw wrote:write written:write""".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased words, keeping "1.25", "u.s" and "o'brien" whole."""
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def spelled_words(text: str) -> list[str]:
    """The words of `words`, one for one, as `text` spells them ("Reko", "EXIM", "d’Affaires")."""
    return _WORD.findall(text)


def terms(text: str) -> list[str]:
    """Stemmed content words: what BM25 indexes and what answer scoring matches on."""
    return _stemmer().stemWords([w for w in words(text) if w not in STOPWORDS])


def lemma_terms(text: str) -> list[str]:
    """`terms`, with irregular past forms read as their base verb ("left" -> "leav")."""
    return _stemmer().stemWords([IRREGULAR.get(w, w) for w in words(text) if w not in STOPWORDS])


def stem(word: str) -> str:
    """The stem of one lower-case word (stopwords too)."""
    return _stemmer().stemWord(word)


# Words that state an amount. "one" and "half" alone are too often not amounts ("one of the...").
NUMBER_WORDS = frozenset(
    """two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty sixty
    seventy eighty ninety hundred hundreds thousand thousands million millions billion billions
    trillion trillions dozen dozens""".split()
)

# A run of capitalised words, which may be joined by a particle: "Reko Diq", "Bank of England",
# "Vasco da Gama". Capitals also open sentences and mark months: see `name_spans`.
NAME_RUN = re.compile(
    r"\b[A-Z][\w’'.-]*(?:\s+(?:(?:of|de|da|van|von|al|bin|d’|d')\s+)?[A-Z][\w’'.-]*)*"
)
# Plain runs of capitalised words, no particles, no dots: the names
# `qa.retrieval.followups.rewrite` carries over from an earlier turn. (`name_spans` would drop an
# opening "Which" too, but changes the
# query of 6 follow-ups in the dev sets: a change to measure on its own.)
CAPITALISED_RUN = re.compile(r"\b[A-Z][\w’'-]*(?:\s+[A-Z][\w’'-]*)*")
_NAME_WORD = re.compile(r"[\w’'.-]+")
# Any capitalised run of word characters, inside compounds too ("then-ABC", "mtDNA",
# "d’Affaires"): what a generated claim must not get wrong (`qa.llm.verify.key_tokens`).
# A question's names (`names`) are whole words: "al-Qaeda" is no name there, and
# `Question.must_match` stays as measured.
CAPITALISED = re.compile(r"[A-Z][\w’'.&-]*")
_POSSESSIVE = re.compile(r"['’]s$", re.I)
_LEADING_WORD = re.compile(r"[\w’']+\s+")


def _acronym_or_figure(word: str) -> bool:
    """ "PCP", "US", "EXIM" (not "A"); "2020", "1.25", "G20", "55-nation"."""
    return word.isupper() and len(word) > 1 or any(ch.isdigit() for ch in word)


def names(text: str) -> list[str]:
    """The names, acronyms and figures of `text` as it spells them, in its order, with a
    possessive dropped ("Pakistan's" -> "Pakistan").

    A name is a capitalised word that is not a stopword; the first word, capitalised anyway,
    counts only as an acronym or a figure.
    """
    found = []
    for i, match in enumerate(_NAME_WORD.finditer(text)):
        word = match.group().strip(".’'-")
        if not word:
            continue
        is_name = word[0].isupper() and i > 0 and word.lower() not in STOPWORDS
        if is_name or _acronym_or_figure(word):
            found.append(_POSSESSIVE.sub("", word))
    return found


def name_spans(
    text: str, is_date: Callable[[str], object] = lambda word: False
) -> list[tuple[int, int]]:
    """Spans of `text` that name someone or something: runs of capitalised words (`NAME_RUN`),
    less what capitals there do not mark, an opening "In" or "The", and runs of nothing but
    stopwords or words `is_date` calls dates (months, weekdays)."""
    found = []
    for m in NAME_RUN.finditer(text):
        s, e = m.span()
        while (w := _LEADING_WORD.match(text[s:e])) and w.group().strip().lower() in STOPWORDS:
            s += w.end()  # "In September" -> "September", "The Commission" -> "Commission"
        if all(w in STOPWORDS or is_date(w) for w in words(text[s:e])):
            continue
        found.append((s, e))
    return found
