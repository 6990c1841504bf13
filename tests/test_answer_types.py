"""Question typing and answer spans: pure functions, no model."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.language import answer_types as T
from qa.language.question import Question


@pytest.mark.parametrize(
    "question, kind",
    [
        ("When did it sign?", T.DATE),
        ("In what year did Rollo die?", T.DATE),
        ("Over how many years must the loan be repaid?", T.DURATION),
        ("How long did the reign last?", T.SIZE),
        ("How tall was Genghis Khan?", T.LENGTH),
        ("By how many kilometers is the route shorter?", T.LENGTH),
        ("How much did the building cost?", T.MONEY),
        ("What is the total estimated cost of the mine?", T.MONEY),
        ("What is the interest rate on the loan?", T.PERCENT),
        ("What share of the project does the province hold?", T.PERCENT),
        ("How many jobs?", T.COUNT),
        ("What was the population of Fresno in 2010?", T.COUNT),
        ("How old was he?", T.NUMBER),
        ("Who leads it?", T.PERSON),
        ("Where is the mine?", T.PLACE),
        ("What does it produce?", T.OTHER),
        # the asking word of the main clause, not of a subordinate one
        ("When many people are arrested, what is a common tactic?", T.OTHER),
        ("Which measure must be adopted when there is a choice?", T.OTHER),
    ],
)
def test_question_types(question, kind):
    assert T.question_type(question) == kind


def spans(sentence: str, question: str) -> list[str]:
    return [sentence[a:b] for a, b in T.spans(sentence, T.asked(question))]


def test_money_percent_duration_and_length_are_told_apart():
    s = "The $1.25 billion loan runs for 15 years at 4.5% over a 2,000 km route."
    assert spans(s, "How much did the loan cost?") == ["$1.25 billion"]
    assert spans(s, "What is the interest rate?") == ["4.5%"]
    assert spans(s, "How many years does it run?") == ["15 years"]
    assert spans(s, "How tall is it?") == ["2,000 km"]
    assert spans(s, "How long is it?") == ["15 years", "2,000 km"]


def test_a_day_of_a_date_is_no_amount_and_a_year_is_a_date():
    s = "Queen Elizabeth II opened the building on 9 October 2004."
    assert spans(s, "How many people opened it?") == []
    assert spans(s, "How much did the building cost?") == []
    assert "9 October 2004" in spans(s, "When did it open?")


def test_a_count_must_count_the_asked_for_things():
    s = "It will create 6,000 jobs in the US and a population of 494,665 lives there."
    assert spans(s, "How many jobs will it create?") == ["6,000"]
    assert spans(s, "How many ounces of gold are there?") == []
    assert spans(s, "How many employees does it have?") == []
    assert spans(s, "How many people make up the population?") == ["494,665"]
    assert spans("Over 60% of Norway's population died.", "How many people died?") == []


def test_a_role_must_be_named_in_full():
    s = "Notably, Prime Minister Shehbaz Sharif met the head of the team."
    assert T.asked("Who is the head coach?").role == ("head", "coach")
    assert spans(s, "Who is the head coach?") == []
    assert spans(s, "Who is Pakistan's finance minister?") == []
    assert "Prime Minister Shehbaz Sharif" in spans(s, "Who is the prime minister?")
    # "who" as the object: no role to look for
    assert T.asked("Who was the medical report written for?").role == ()


def test_a_capitalised_opening_word_is_no_name():
    assert spans("The offices are in the MAC.", "Who works there?") == ["MAC"]


def test_months_and_opening_stopwords_are_no_names():
    s = "In September 1958, Bank of America launched a new product."
    assert spans(s, "Who launched it?") == ["Bank of America"]
    assert spans(s, "When was it launched?") == ["September 1958"]


def test_a_year_range_is_a_date_not_an_amount():
    s = "Over 60% of Norway's population died in 1348–50."
    assert spans(s, "How many people died?") == []
    assert "1348–50" in spans(s, "When did they die?")


@pytest.mark.parametrize(
    "question, role",
    [
        ("Who was pope when the Black Death reached Europe?", ("pope",)),
        ("Who is Pakistan's finance minister?", ("finance", "minister")),
        ("Who was Genghis Khan?", ()),  # a name, not a role
        ("Who was responsible for the paper?", ()),  # an adjective
    ],
)
def test_roles_with_and_without_an_article(question, role):
    assert T.asked(question).role == role


# ---------------------------------------------------------------- properties, on made-up text

WORDS = st.sampled_from(
    "It The In He they Reko Diq Bank of America EXIM £304m $1.25 billion 6,000 jobs 15 years 4.5% "
    "2,000 km 9 October 2004 1348–50 December who what when how many much cost rate head coach "
    "minister was is the a of in at for . , ? “ ” ( ) – - ’s people employees Venice 1974".split()
)
TEXT = st.lists(WORDS, min_size=1, max_size=40).map(" ".join)


@settings(max_examples=300, deadline=None, derandomize=bool(os.environ.get("CI")))
@given(TEXT, TEXT)
def test_spans_lie_inside_the_sentence_and_hold_text(sentence, question):
    for kind in (T.asked(question), *T.ACCEPTS):
        for a, b in T.spans(sentence, kind):
            assert 0 <= a < b <= len(sentence)
            assert sentence[a:b].strip() == sentence[a:b]


@settings(max_examples=200, deadline=None, derandomize=bool(os.environ.get("CI")))
@given(st.lists(TEXT.map(lambda t: t + "."), min_size=1, max_size=6).map(" ".join), TEXT)
def test_answers_quote_their_passage_verbatim_or_abstain(text, question):
    from qa.answering import extractive as answering
    from qa.records import Passage

    passage = Passage(
        doc_id="d.txt",
        title="Doc",
        date=None,
        source="d.txt",
        start=10,
        end=10 + len(text),
        text=text,
        score=1.0,
    )
    result = answering.answer(Question.read(question), [passage], lambda term: 3.0)
    assert result.abstained == (not result.citations)
    for c in result.citations:
        assert text[c.start - 10 : c.end - 10] == c.quote


@pytest.mark.parametrize(
    ("question", "asking"),
    [
        ("Police arrested 31 men this week. Where was the event?", "Where was the event?"),
        ("A deal was signed, officials said. How many jobs?", "How many jobs?"),
        ("When did the U.S. Army arrive?", "When did the U.S. Army arrive?"),  # no sentence end
        ("Mr. Smith spoke. Who was he?", "Who was he?"),
        ("How many?", "How many?"),
    ],
)
def test_the_asking_part_is_the_last_sentence_after_a_preamble(question, asking):
    assert T.asking_part(question) == asking


def test_a_preamble_does_not_change_the_kind_asked():
    preamble = "Reporters asked when the summit would open. "  # its "when" asks nothing
    question = "How many nations took part?"
    assert T.question_type(preamble + question) == T.COUNT
    assert T.asked(preamble + question) == T.asked(question)
