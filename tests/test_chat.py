"""Follow-up rewriting: a question that names its own subject is searched as asked; one that
points back or leaves words out carries the latest topic's subject, and only that."""

from __future__ import annotations

import pytest

from qa.records import Message
from qa.retrieval import followups

EXIM = "What did the US EXIM Bank approve for Reko Diq?"


def talk(*questions: str) -> list[Message]:
    """A history of these user questions, each answered."""
    history: list[Message] = []
    for q in questions:
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": "An answer."}]
    return history


def test_a_new_topic_does_not_inherit_the_old_one() -> None:
    # issue 26: "Who was Rollo?" was searched with "(EXIM Reko Diq big loan)", and "Where is
    # Normandy?" after it with "(Rollo)"
    history = talk("How big is the EXIM loan for Reko Diq?")
    assert followups.rewrite("Who was Rollo?", history) == "Who was Rollo?"
    history += talk("Who was Rollo?")
    assert followups.rewrite("Where is Normandy?", history) == "Where is Normandy?"


def test_a_pronoun_or_an_ellipsis_carries_the_earlier_subject() -> None:
    history = talk(EXIM)
    for question in ("How many jobs will it create in Balochistan?", "And how many jobs?"):
        query = followups.rewrite(question, history)
        assert query.startswith(question + " (") and "Reko Diq" in query and "EXIM" in query


def test_only_the_latest_topic_is_carried() -> None:
    history = talk(EXIM, "Who was Genghis Khan?")
    assert followups.rewrite("Who succeeded him?", history) == "Who succeeded him? (Genghis Khan)"


def test_the_subject_is_carried_through_follow_ups_without_their_own_words() -> None:
    history = talk("Who was Genghis Khan?", "Where was he born?")
    assert followups.rewrite("When did he die?", history) == "When did he die? (Genghis Khan)"
    history = talk("What is Project Vault?", "How much is it worth?", "Who runs it?")
    assert followups.rewrite("When?", history) == "When? (Project Vault)"


def test_assistant_turns_are_not_carried() -> None:
    history = [
        {"role": "user", "content": "Who was Genghis Khan?"},
        {"role": "assistant", "content": "The founder of the Mongol Empire; Ögedei succeeded him."},
    ]
    assert (
        followups.rewrite("Where was he buried?", history) == "Where was he buried? (Genghis Khan)"
    )


@pytest.mark.parametrize(
    "question",
    [
        "Who was Rollo?",  # a name of its own
        "What is Project Vault's budget in dollars?",
        "Who led the Normans when they swore fealty to Charles III?",  # "they": the Normans
        "Did Temujin change his name?",
        "Who led the US delegation that signed an MoU?",  # "that" opens a relative clause
        "Who proved there are infinitely many primes?",  # "there are": no place
        "What is a prime number?",  # words of its own
        "What is photosynthesis?",  # asks what a thing is
        "What does the immune system protect against?",
        "How many nations attended the critical minerals summit?",
        "What happened in 1066?",
        "And who was Rollo?",
    ],
)
def test_questions_that_name_their_subject_stand_alone(question: str) -> None:
    assert not followups.needs_context(question)
    assert followups.rewrite(question, talk(EXIM)) == question


@pytest.mark.parametrize(
    "question",
    [
        "How many jobs will it create in Pakistan?",  # "it" before any name
        "What did she say the project could serve as?",
        "How much in US equipment did she say it would bring in?",  # "US" is no "she"
        "Which Indian minister was there?",  # "there": a place
        "When was that signed?",  # "that" points
        "Is this the largest mine?",
        "Who else attended?",
        "And how many jobs?",  # ellipses
        "And its symbol?",
        "And from Sacramento?",
        "What about Harvard?",
        "Who proved there are infinitely many?",
        "What is the largest known one?",
        "When?",
        "Where was the meeting?",
        "What is the biggest city on the river?",  # "the river" and little else
        "Who brought the show back in 2005?",
    ],
)
def test_questions_that_point_back_or_leave_words_out_need_context(question: str) -> None:
    assert followups.needs_context(question)
    assert followups.rewrite(question, talk("Where does the Rhine begin?")).startswith(
        question + " ("
    )


def test_what_about_x_asks_the_last_question_of_x() -> None:
    history = talk("Who founded the University of Chicago?")
    assert followups.rewrite("What about Harvard?", history) == "What about Harvard? (founded)"
    # ... and X is the subject from then on
    assert followups.rewrite("When?", history + talk("What about Harvard?")) == "When? (Harvard)"


def test_a_swapped_place_keeps_the_subject() -> None:
    history = talk("What is Fresno's population?", "How far is it from Los Angeles?")
    query = followups.rewrite("And from Sacramento?", history)
    assert "Fresno" in query and "far" in query and "Angeles" not in query
    history += talk("And from Sacramento?")
    query = followups.rewrite("When was it founded?", history)
    assert "Fresno" in query and "Sacramento" not in query


def test_without_history_or_user_turns_nothing_is_added() -> None:
    assert followups.rewrite("  Who founded it?  ") == "Who founded it?"
    assistant_only: list[Message] = [{"role": "assistant", "content": "Hello, Reko Diq."}]
    assert followups.rewrite("Who founded it?", assistant_only) == "Who founded it?"
    assert not followups.needs_context("")
