"""Follow-up questions: make "How many jobs will it create there?" searchable on its own.

A question that needs the conversation gets the subject of the conversation's latest topic
appended; a question that names its own subject is searched as asked, whatever came before
("Who was Rollo?" after a question on the EXIM loan). A question needs the conversation when
it points back (a pronoun or "there" that nothing in it names, "that" or "this" as a pointer,
"the river" with little else), or leaves words out ("and how many jobs?", "what about
Harvard?", "and its symbol?", "who proved there are infinitely many?", "when?").

What is carried is the subject of the latest earlier question that stood alone: its names and
content words, not those of the follow-ups after it ("When did he die?" after "Who was Genghis
Khan?" and "Where was he born?" carries "Genghis Khan", not "born"), nor of any older topic.
"What about Harvard?" swaps the subject: it carries what the previous search held but its names,
and is the subject from then on. The rewritten query is returned to the user, so what was
searched is always visible.
Measured by `qa eval eval/sets/conversations` (eval/README.md, "Conversation sets").
"""

from __future__ import annotations

from collections.abc import Sequence

from qa.language import lexical
from qa.records import Message

# Words that point back to something named before, when nothing before them in the question
# names it ("Who led the Normans when they swore fealty?" points nowhere else).
_PRONOUNS = frozenset("it its it's they them their theirs".split())
_PERSONAL = frozenset("he him his she her hers".split())  # an acronym ("US") names no person
_POINTERS = frozenset("this these those former latter else".split())  # always point back
_BE = frozenset("is are was were be been being 's".split())  # "there is": no place
_QUESTION_WORDS = frozenset(
    "what who whom whose when where which why how is are was were do does "
    "did can could will would should and the a an in on of".split()
)
_WH = frozenset("what who whom whose when where which why how".split())
_AUXILIARIES = frozenset(
    "is are was were do does did can could will would should shall may might must has have "
    "had".split()
)
# The last word of a question that left its noun out: "how many?", "the largest known one?"
_ELIDED_NOUN = frozenset("many much one ones".split())
# Adverbs that neither name a subject nor end a noun phrase ("brought the show back")
_PARTICLES = frozenset("back again away ago later together apart forward".split())
_SWAP_OPENERS = (("what", "about"), ("how", "about"), ("what", "of"))
# A question with no name of its own and at most this many content words besides "the X"
# (X a lone noun: "the river", "the show") means the X of the conversation.
_MAX_WORDS_BESIDE_THE_X = 2


def _is_name(word: str, first: bool) -> bool:
    """A proper name or an acronym as the question spells it; figures name no subject."""
    if any(ch.isdigit() for ch in word):
        return False
    acronym = word.isupper() and len(word) > 1
    return acronym or (not first and word[0].isupper() and word.lower() not in lexical.STOPWORDS)


def _names(question: str) -> list[bool]:
    """For each of the question's words (`lexical.words`), whether it is a name."""
    return [_is_name(w, i == 0) for i, w in enumerate(lexical.spelled_words(question))]


def _content(words: Sequence[str]) -> list[str]:
    return [
        w
        for w in words
        if w not in lexical.STOPWORDS and w not in _PARTICLES and not any(ch.isdigit() for ch in w)
    ]


def _points_back(words: list[str], names: list[bool], spelled: list[str]) -> bool:
    """A pronoun, "there" or "that" in the question points to an earlier turn."""
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if word in _POINTERS:
            return True
        if word in _PRONOUNS and not any(names[:i]):
            return True
        people = [n and not w.isupper() for n, w in zip(names[:i], spelled[:i], strict=True)]
        if word in _PERSONAL and not any(people):
            return True
        if word == "there" and after not in _BE and not (i == 1 and before in _BE):
            return True  # a place ("who was there?"), not "there are" / "is there a"
        if word == "that" and (not before or before in lexical.STOPWORDS):
            return True  # "when was that signed?", "in that year"; not "the bank that lent"
    return False


def _leaves_words_out(words: list[str], has_name: bool) -> bool:
    """An ellipsis: "and its symbol?", "how many?", "when?", "where was the meeting?"."""
    if words[0] == "and" and len(words) > 1 and words[1] not in _WH | _AUXILIARIES:
        return True  # "and from Sacramento?", "and its symbol?"
    if words[-1] in _ELIDED_NOUN:
        return True
    if has_name:
        return False
    content = _content(words)
    has_figure = any(ch.isdigit() for w in words for ch in w)  # "what happened in 1066?"
    if len(content) <= 1 and not has_figure and not _defines(words):
        return True
    for i, word in enumerate(words[:-1]):
        noun = words[i + 1]
        after = words[i + 2] if i + 2 < len(words) else ""
        lone = noun in content and (not after or after in _PARTICLES or after in lexical.STOPWORDS)
        if word == "the" and lone and after != "of":
            return len(content) - 1 <= _MAX_WORDS_BESIDE_THE_X
    return False


def _defines(words: list[str]) -> bool:
    """ "What is photosynthesis?", "Who is a monk?" ask what a thing is, by its own word."""
    rest = [w for w in words[2:] if w not in ("a", "an")]
    return len(words) >= 3 and words[0] in ("what", "who") and words[1] in _BE and len(rest) == 1


def _swaps_subject(question: str, last: str) -> bool:
    """ "What about Harvard?", "And from Sacramento?": the last question, `last`, asked of a
    name it did not name ("What about the jobs in the US?" after a question on the US EXIM
    Bank keeps its subject)."""
    words = lexical.words(question)
    opens = tuple(words[:2]) in _SWAP_OPENERS or (len(words) > 1 and words[0] == "and")
    names = {w for w, is_name in zip(words, _names(question), strict=True) if is_name}
    return (
        opens and bool(names) and not names & set(lexical.words(last)) and len(_content(words)) <= 2
    )


def needs_context(question: str) -> bool:
    """Whether a question refers back to the conversation, rather than naming its subject."""
    words = lexical.words(question)
    if not words:
        return False
    if tuple(words[:2]) in _SWAP_OPENERS:
        return True
    names = _names(question)
    spelled = lexical.spelled_words(question)
    return _points_back(words, names, spelled) or _leaves_words_out(words, any(names))


def _own_words(turn: str) -> list[str]:
    """A question's names and content words, names first: what a follow-up carries of it."""
    names = [n for n in lexical.CAPITALISED_RUN.findall(turn) if n.lower() not in _QUESTION_WORDS]
    return [*names, *(w for w in lexical.words(turn) if w not in lexical.STOPWORDS)]


def _name_words(turn: str) -> set[str]:
    return {w for w, is_name in zip(lexical.words(turn), _names(turn), strict=True) if is_name}


def _carried(previous: Sequence[str]) -> tuple[list[list[str]], list[list[str]]]:
    """For each earlier question: its subject, what a follow-up to it carries (its own words
    when it stood alone, the first always does, or swapped the subject; else the subject of
    the question before it), and what its own search held (its words and what they carried)."""
    subjects: list[list[str]] = []
    searched: list[list[str]] = []
    for i, turn in enumerate(previous):
        own = _own_words(turn)
        if i == 0 or not needs_context(turn):
            subjects.append(own)
            searched.append(own)
        elif _swaps_subject(turn, previous[i - 1]):
            # "and from Sacramento?" swaps a place, "what about Harvard?" the subject
            subjects.append(subjects[-1] if _swaps_a_complement(turn) else own)
            searched.append(own + _swapped(previous[i - 1], searched[-1]))
        else:
            subjects.append(subjects[-1])
            searched.append(own + subjects[-1])
    return subjects, searched


_PREPOSITIONS = frozenset(
    "from to in at on for with by into over under between after before through during "
    "near since until".split()
)


def _swaps_a_complement(question: str) -> bool:
    """ "And from Sacramento?", "What about in the US?": the name follows a preposition."""
    words = lexical.words(question)
    start = 2 if tuple(words[:2]) in _SWAP_OPENERS else 1
    return start < len(words) and words[start] in _PREPOSITIONS


def _swapped(last: str, last_searched: list[str]) -> list[str]:
    """What "what about X?" keeps of the previous question `last`: what its search held, but
    its names."""
    names = _name_words(last)
    return [w for w in last_searched if not set(lexical.words(w)) & names]


def rewrite(question: str, history: Sequence[Message] = ()) -> str:
    """The query to search for: the question, plus the conversation's subject when it needs it."""
    question = question.strip()
    previous = [m["content"] for m in history if m.get("role") == "user" and m.get("content")]
    if not previous or not needs_context(question):
        return question
    subjects, searched = _carried(previous)
    if _swaps_subject(question, previous[-1]):
        carried = _swapped(previous[-1], searched[-1])
    else:
        carried = subjects[-1]
    have = set(lexical.words(question))
    context: list[str] = []
    for item in carried:
        key = set(lexical.words(item))
        if key and not key <= have:
            context.append(item)
            have |= key
    return f"{question} ({' '.join(context)})" if context else question
