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
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased words, keeping "1.25", "u.s" and "o'brien" whole."""
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def terms(text: str) -> list[str]:
    """Stemmed content words: what BM25 indexes and what answer scoring matches on."""
    return _stemmer().stemWords([w for w in words(text) if w not in STOPWORDS])


def lemma_terms(text: str) -> list[str]:
    """`terms`, with irregular past forms read as their base verb ("left" -> "leav")."""
    return _stemmer().stemWords([IRREGULAR.get(w, w) for w in words(text) if w not in STOPWORDS])


def stem(word: str) -> str:
    """The stem of one lower-case word (stopwords too)."""
    return _stemmer().stemWord(word)
