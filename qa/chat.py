"""Follow-up questions: make "How many jobs will it create there?" searchable on its own.

A follow-up that leans on the conversation (a pronoun, "there", or few words of its own) gets the
names and key words of the previous user turns appended. The rewritten query is returned to the
user, so what was searched is always visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from qa import lexical


class Message(TypedDict):
    role: str  # "user" | "assistant"
    content: str


_REFERRING = frozenset(
    "it its it's they them their theirs there this that these those he him his she her hers "
    "former latter such then".split()
)
_QUESTION_WORDS = frozenset(
    "what who whom whose when where which why how is are was were do does "
    "did can could will would should and the a an in on of".split()
)


def needs_context(question: str) -> bool:
    """Whether a question refers back to the conversation."""
    words = lexical.words(question)
    content = [w for w in words if w not in lexical.STOPWORDS]
    return bool(_REFERRING & set(words)) or len(content) <= 1


def rewrite(question: str, history: Sequence[Message] = ()) -> str:
    """The query to search for: the question, plus context from earlier turns when it needs it."""
    question = question.strip()
    previous = [m["content"] for m in history if m.get("role") == "user" and m.get("content")]
    if not previous or not needs_context(question):
        return question
    have = set(lexical.words(question))
    context: list[str] = []
    for turn in reversed(previous[-2:]):
        names = [
            n for n in lexical.CAPITALISED_RUN.findall(turn) if n.lower() not in _QUESTION_WORDS
        ]
        words = [w for w in lexical.words(turn) if w not in lexical.STOPWORDS]
        for item in [*names, *words]:
            key = item.lower()
            if key not in have and not set(lexical.words(key)) <= have:
                context.append(item)
                have.update(lexical.words(key))
        if context:
            break
    return f"{question} ({' '.join(context)})" if context else question
