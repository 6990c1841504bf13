"""What kind of answer a question asks for, and where a sentence holds one.

A question is typed by its wh-phrase ("how many years", "what is the interest rate", "when"),
the way classic question-answering pipelines do; a sentence holds an answer of that type when
it has a span of an accepted class: a date, a sum of money, a percentage, a duration, a length,
a count or a name. "How many years must the loan be repaid over?" is not answered by
"$1.25 billion", nor "How tall was he?" by "in 1206": finer types let the answer abstain there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.language import lexical
from qa.language.lexical import STOPWORDS

DATE, DURATION, SIZE, LENGTH, MONEY, PERCENT, COUNT, NUMBER = (
    "date",
    "duration",
    "size",  # "how long": a duration or a length
    "length",
    "money",
    "percent",
    "count",
    "number",
)
PERSON, PLACE, OTHER = "person", "place", "other"

_WH = re.compile(r"\b(what|which|who|whom|whose|when|where|why|how)\b")
_BE = r"(?:(?:is|was|were|are|will be|has been|had been)\s+)?(?:(?:the|a|an|its|their)\s+)?"
_ANY2 = r"(?:[\w'-]+\s+){0,3}"  # up to three words between "what is the" and its noun
_MONEY_CUES = (
    "cost|costs|costing|pay|pays|paid|spend|spends|spent|worth|price|priced|fund|funds|funded|"
    "funding|budget|invest|invested|investment|money|loan|loans|lend|lent|earn|earns|earned|sold|"
    "sell|sells|charge|charged|fee|fees|salary|revenue|raise|raised|dollars|pounds|euros|"
    "financing|donate|donated|afford|profit|profits|income|owe|owed|debt|grant|granted"
)
_TIME_UNITS = r"years?|months?|weeks?|days?|hours?|minutes?|seconds?|decades?|centuries|century"

_LENGTH_UNITS = (
    "km|kilomet(?:re|er)s?|m|met(?:re|er)s?|cm|centimet(?:re|er)s?|mm|millimet(?:re|er)s?|nm|"
    "nanomet(?:re|er)s?|µm|micromet(?:re|er)s?|microns?|miles?|mi|feet|foot|ft|inch|inches|"
    "yards?|light[- ]years?"
)

# First match wins, tried on the question's wh-phrase (see `wh_phrase`).
_QUESTION_PATTERNS = [
    (
        DATE,
        r"when\b|since when\b|how long ago\b|(?:what|which)\s+(?:\w+\s+)?(?:year|years|date|day|"
        r"month|century|decade|era)\b",
    ),
    (DURATION, rf"how many\s+(?:more\s+|fewer\s+)?(?:{_TIME_UNITS})\b|for how long\b"),
    (SIZE, r"how long\b"),
    (
        MONEY,
        rf"how much\b.*\b(?:{_MONEY_CUES})\b|what\s+{_BE}{_ANY2}(?:cost|price|fee|fees|"
        r"salary|budget|revenue|worth|sum)\b|how much money\b",
    ),
    (
        PERCENT,
        rf"what\s+{_BE}{_ANY2}(?:percentage|percent|proportion|share|fraction|rate)\b|"
        r"what\s+(?:percentage|percent|proportion|share|fraction)\b|how much of\b",
    ),
    (
        LENGTH,
        rf"how (?:tall|deep|wide|far|thick)\b|how many\s+(?:{_LENGTH_UNITS})\b|"
        rf"what\s+{_BE}{_ANY2}(?:height|length|distance|depth|width|elevation|altitude|diameter|"
        r"radius|wavelength)\b",
    ),
    (
        COUNT,
        rf"how many\b|what\s+{_BE}{_ANY2}(?:population|number)\b|which number\b",
    ),
    (
        NUMBER,
        r"how (?:much|old|big|large|high|often|fast|heavy|hot|cold|strong|long)\b|"
        r"(?:what|which)\s+(?:amount|size|sum|value|age|temperature|speed|weight|mass|area)\b|"
        r"at what age\b",
    ),
    (PERSON, r"(?:who|whom|whose)\b|(?:which|what)\s+(?:person|man|woman)\b|by whom\b"),
    (
        PLACE,
        r"where\b|(?:which|what)\s+(?:country|city|province|state|region|place|town|continent|"
        r"island|county|village|river|mountain)\b",
    ),
]

# Which classes of span answer which kind of question.
ACCEPTS: dict[str, frozenset[str]] = {
    DATE: frozenset({DATE}),
    DURATION: frozenset({DURATION}),
    SIZE: frozenset({DURATION, LENGTH}),
    LENGTH: frozenset({LENGTH}),
    MONEY: frozenset({MONEY}),
    PERCENT: frozenset({PERCENT}),
    COUNT: frozenset({COUNT, PERCENT}),  # "how many of them": "a third" too
    NUMBER: frozenset({COUNT, PERCENT, DURATION, LENGTH, MONEY}),
    PERSON: frozenset({"name"}),
    PLACE: frozenset({"name"}),
}

_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DATE_RE = re.compile(
    rf"\b((?:{_MONTHS})\.?(?:\s+\d{{1,2}}(?:st|nd|rd|th)?,?)?(?:\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|"
    rf"th)?\s+(?:{_MONTHS})(?:\s+\d{{4}})?|(?:1[0-9]|20)\d{{2}}(?:s|[–-]\d{{2,4}}\b)?|\d{{1,2}}(?:st|nd|rd|th)\s+"
    r"centur(?:y|ies)|(?:mon|tues|wednes|thurs|fri|satur|sun)day|\d{4}-\d{2}-\d{2})\b",
    re.I,
)
_NUMBER_WORDS = "|".join(sorted(lexical.NUMBER_WORDS))
_CURRENCY_WORDS = (
    "dollars?|pounds?|euros?|francs?|marks|yen|yuan|rupees?|guineas?|shillings?|pence|cents?|"
    "usd|gbp|eur|sterling"
)
_QUANTITY_RE = re.compile(
    r"(?P<cur>(?:US|A|C|HK|NZ)?[$€£¥]\s?)?"
    rf"(?P<num>\b\d(?:[\d,.]*\d)?(?:(?:bn|m|k)\b|\b)|\b(?:{_NUMBER_WORDS})\b)"  # "£304m"
    r"(?:[\s-](?:hundred|thousand|million|billion|trillion|bn)\b)?"
    rf"(?P<unit>\s?%|[\s-](?:per ?cent|percent|percentage points|{_CURRENCY_WORDS}|"
    rf"{_TIME_UNITS}|{_LENGTH_UNITS})\b)?",
    re.I,
)
_FRACTION_RE = re.compile(
    r"\b(?:(?:a|one|two|three|four)[\s-](?:half|third|thirds|quarter|quarters|fifth|fifths|"
    r"tenth|tenths)|half|one in (?:\w+))\b",
    re.I,
)
_YEAR = re.compile(r"(?:1[0-9]|20)\d{2}s?")


# a sentence ends after a word of two lower-case letters or digits ("week.", not "U.S." or "Mr.")
_SENTENCE_END = re.compile(r"(?<=[a-z0-9]{2}[.!])\s+(?=[\"“‘(]?[A-Z])")


def asking_part(question: str) -> str:
    """The sentence that asks, when a question opens with sentences of context (a news-quiz
    preamble: "Police arrested 31 men this week believed to be ... Where was the event?"): its
    last sentence. A one-sentence question is its own asking part."""
    parts = _SENTENCE_END.split(question.strip())
    return parts[-1] if len(parts) > 1 and parts[-1].strip() else question


def wh_phrase(question: str, lower: bool = True) -> str:
    """The question from its asking word on, in lower case: in "When many are arrested, what is
    a common tactic?" that is "what is a common tactic?", and in "Which measure applies when
    ...?" it is the whole question, since "when" there opens a subordinate clause."""
    return _wh_phrase_in(asking_part(question), lower)


def _wh_phrase_in(asking: str, lower: bool = True) -> str:
    """`wh_phrase` of a question's asking part."""
    q = asking.replace("’", "'")
    found = [(c, m) for c in re.split(r"[,;:]", q) if (m := _WH.search(c.lower()))]
    if not found:
        return ""
    clause, wh = found[-1]
    phrase = clause[wh.start() :].strip()
    return phrase.lower() if lower else phrase


def question_type(question: str) -> str:
    """The kind of answer a question asks for (one of the kinds above, or OTHER)."""
    return _kind(wh_phrase(question))


def _kind(phrase: str) -> str:
    for kind, pattern in _QUESTION_PATTERNS:
        if re.match(pattern, phrase):
            return kind
    return OTHER


@dataclass(frozen=True)
class Asked:
    """What a question asks for: its kind, and the words an answer must be about.

    `counted`: the words of "how many American jobs": a count answers only with one of them
    within `COUNTED_WINDOW` words ("6,000 jobs"; not "11 million customers" for employees).
    `role`: the words of "who is the head coach": a sentence that names no head coach names none.
    """

    kind: str
    counted: tuple[str, ...] = ()
    role: tuple[str, ...] = ()


COUNTED_WINDOW = 3
_ADVERBS = frozenset("ever still even yet already also currently".split())
_PHRASE_END = (
    r"(?:of|in|at|on|for|from|to|by|with|that|which|who|whose|did|does|do|is|was|were|are|has|"
    r"have|had|will|would|can|could|should|may|might|must|when|where|as|during|after|before|and|"
    r"or|there|it|they|he|she|we|you)"
)


def asked(question: str) -> Asked:
    """Type a question (see `Asked`)."""
    return asked_in(asking_part(question))


def asked_in(asking: str) -> Asked:
    """Type a question by its asking part (`asking_part`; see `Asked`)."""
    cased = _wh_phrase_in(asking, lower=False).rstrip("?!. ")
    phrase = cased.lower()
    kind = _kind(phrase)
    counted: tuple[str, ...] = ()
    role: tuple[str, ...] = ()
    if kind == COUNT and (m := re.match(r"how many\s+(.*)", phrase)):
        counted = _head_words(m.group(1))
    elif kind == PERSON and (
        m := re.match(
            r"[Ww]ho\s+(?:is|was|were|are|will be|has been|became)\s+"
            r"(?:the\s+|a\s+|an\s+|[\w-]+'s?\s+|(?=[a-z]))(.*)",  # "Who was pope when ...?"
            cased,
        )
    ):
        words = _head_words(m.group(1).lower())
        # not "Who was the report written for?", where "who" is the object, nor "Who was
        # responsible for ...?", an adjective
        adjective = len(words) == 1 and re.search(r"(?:ible|able|ful|ous|less)$", words[0])
        if len(words) <= 3 and not adjective and not re.search(rf"\b{_PHRASE_END}$", phrase):
            role = words
    return Asked(kind, counted, role)


def _head_words(text: str) -> tuple[str, ...]:
    """The content words of a noun phrase, up to its first preposition or auxiliary verb."""
    out = []
    for word in text.split():
        if re.fullmatch(_PHRASE_END, word) or not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        if word not in STOPWORDS and word not in _ADVERBS and not word.endswith("ly"):
            out.append(word)
    return tuple(out)


def _same_word(a: str, b: str) -> bool:
    """Forms of one word: "nation"/"nations", "employed"/"employees", "US"/"us"; not
    "minister"/"ministerial"."""
    a, b = lexical.stem(a.lower()), lexical.stem(b.lower())
    short, long = sorted((a, b), key=len)
    return long.startswith(short) and len(long) - len(short) <= 2 and len(short) >= 2


def _quantity_class(match: re.Match) -> str:
    unit = (match.group("unit") or "").strip(" -").lower()
    if match.group("cur") or re.fullmatch(_CURRENCY_WORDS, unit):
        return MONEY
    if unit in ("%", "percent", "per cent", "percentage points"):
        return PERCENT
    if re.fullmatch(_TIME_UNITS, unit):
        return DURATION
    if re.fullmatch(_LENGTH_UNITS, unit):
        return LENGTH
    return COUNT


def spans(sentence: str, kind: str | Asked) -> list[tuple[int, int]]:
    """Spans of `sentence` holding an answer of `kind`, trailing punctuation trimmed."""
    ask = kind if isinstance(kind, Asked) else Asked(kind)
    if ask.role:
        words = re.findall(r"[\w-]+", sentence)
        if not all(any(_same_word(r, w) for w in words) for r in ask.role):
            return []
    accepted = ACCEPTS.get(ask.kind, frozenset())
    if ask.counted:  # "how many people": a count, not "60%" nor "4,274 m"
        accepted = frozenset({COUNT})
    found: list[tuple[int, int]] = []
    dates = [m.span() for m in _DATE_RE.finditer(sentence)]
    if DATE in accepted:
        found += dates
    if accepted - {DATE, "name"}:
        for m in _QUANTITY_RE.finditer(sentence):
            s, e = m.span()
            if _YEAR.fullmatch(m.group().strip(" ,.")) or any(a <= s < b for a, b in dates):
                continue  # "in 2004", the 9 of "9 October 2004": dates, not amounts
            if _quantity_class(m) in accepted and _counts(sentence, s, e, ask.counted):
                found.append((s, e))
        if PERCENT in accepted:
            found += [m.span() for m in _FRACTION_RE.finditer(sentence)]
    if "name" in accepted:
        found += lexical.name_spans(sentence, is_date=_DATE_RE.fullmatch)
    return sorted((s, _rstrip_punct(sentence, s, e)) for s, e in found)


def _counts(sentence: str, start: int, end: int, counted: tuple[str, ...]) -> bool:
    """Whether the amount at `start:end` counts the `counted` things: one of their words stands
    within `COUNTED_WINDOW` words after it ("6,000 jobs", "two US Navy bases") or before it
    ("a population of 494,665")."""
    if not counted:
        return True
    after = re.findall(r"\w+", sentence[end:])[:COUNTED_WINDOW]
    before = re.findall(r"\w+", sentence[:start])[-COUNTED_WINDOW:]
    return any(_same_word(c, w) for c in counted for w in after + before)


def _rstrip_punct(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in " ,.;:’'":
        end -= 1
    return end
