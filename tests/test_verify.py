"""Verification of generated sentences: claims and markers, names and numbers, and calibration."""

from __future__ import annotations

import pytest

from qa.llm.prompt import Source
from qa.llm.verify import (
    MIN_COSINE,
    MIN_LEXICAL,
    Claim,
    is_refusal,
    key_tokens,
    split_claims,
    verify,
)
from qa.records import Passage
from qa.store import folder as store


def test_markers_are_read_and_removed_wherever_the_model_puts_them():
    reply = (
        "The loan was $1.25 billion [1]. It was approved in December. [2] "
        "It creates jobs [1, 3]. Vault is new [2-3][9]\n- A bullet point [1].\n"
        "2.\nThe source for this answer is: Baker said so [2]. Who said it?"
    )
    claims = split_claims(reply, n_sources=3)
    assert [(c.text, c.cited) for c in claims] == [
        ("The loan was $1.25 billion.", (1,)),
        ("It was approved in December.", (2,)),
        ("It creates jobs.", (1, 3)),
        ("Vault is new", (2, 3)),  # [9] names no source of the prompt
        ("A bullet point.", (1,)),
        ("Baker said so.", (2,)),  # a preamble goes; "2." and an echoed question claim nothing
    ]


def test_a_refusal_is_recognized_and_claims_nothing():
    assert is_refusal("The sources don't say.")
    assert is_refusal("The sources do not mention the interest rate.")
    assert not is_refusal("The loan was $1.25 billion [1]. The sources don't say more.")
    assert split_claims("The sources don't say.", 3)[0].refusal


@pytest.mark.parametrize(
    ("sentence", "required"),
    [
        (
            "Washington announced $1.25 billion for Reko Diq.",
            {"washington", "1.25", "billion", "reko", "diq"},
        ),
        ("According to the article, 7,500 jobs will be created.", {"7500"}),
        ("The loan was $9 trillion.", {"9", "trillion"}),
        ("It was signed with the U.S. in September 2025.", {"us", "september", "2025"}),
        ("America’s envoy is Natalie Baker.", {"america", "natalie", "baker"}),
        ("Six thousand jobs are expected.", {"six", "thousand"}),
        ("It was paid in eighty instalments.", {"eighty"}),  # every number word counts
    ],
)
def test_names_and_numbers_a_quote_must_hold(sentence, required):
    assert key_tokens(sentence, context="the jobs were expected; six of them") == required


@pytest.fixture(scope="module")
def article(seed_index, embedder) -> tuple[list[Passage], list[Source]]:
    """The whole seed article as one passage, shown whole as source [1]."""
    snap = store.open_snapshot(seed_index, embedder.name, embedder.dim)
    doc = snap.document("reko-diq-exim-2026-02-06.txt")
    snap.close()
    passage = Passage(
        doc_id=doc.id,
        title=doc.title,
        date=doc.date,
        source=doc.source,
        start=0,
        end=len(doc.text),
        text=doc.text,
        score=1.0,
    )
    return [passage], [Source(n=1, passage=0, start=0, end=len(doc.text))], doc.text


# Hand-written against the seed article: what a model might write, faithful or not.
FAITHFUL = [
    "The US EXIM Bank approved $1.25 billion in financing for Reko Diq.",
    "The EXIM loan is $1.25 billion.",
    "The project is expected to create 7,500 jobs in Balochistan.",
    "About 6,000 jobs will be created in the US.",
    "Natalie Baker is America's Charge d'Affaires in Pakistan.",
    "Project Vault will create a domestic strategic critical minerals reserve.",
    "The ministerial was a 55-nation conference.",
    "India's External Affairs Minister S Jaishankar attended the conference.",
    "Reko Diq is a copper and gold mine in Balochistan province.",
    "Pakistan's Frontier Works Organisation signed a Memorandum of Understanding with a US "
    "delegation in September 2025.",
    "Shehbaz Sharif and Asim Munir presented Trump with a wooden box of rare earth minerals.",
    "EXIM's financing will bring in up to $2 billion of U.S. mining equipment and services.",
    "The State Department listed Reko Diq as one of America's critical minerals investments.",
]
INVENTED = [
    "The loan was $9 trillion.",
    "The EXIM loan is $2.5 billion.",
    "The project will create 75,000 jobs in Balochistan.",
    "Natalie Baker is the US Secretary of State.",
    "The mine produces lithium and cobalt.",
    "Reko Diq is located in Punjab province.",
    "Marco Rubio signed the Memorandum of Understanding.",
    "The ministerial took place in London.",
    "China financed the Reko Diq mine.",
    "The ministerial was a 60-nation conference.",
    "Microsoft will supply the mining equipment.",
    "The mine will create 7,500 jobs in India.",
]


def test_faithful_sentences_are_kept_and_invented_ones_removed(article, embedder):
    passages, sources, text = article
    claims = [Claim(s, (1,)) for s in FAITHFUL + INVENTED]
    checks = verify(claims, sources, passages, embedder)
    for check in checks:
        print(
            f"{check.supported!s:5} lexical={check.lexical:.2f} cosine={check.cosine:.2f} "
            f"missing={check.missing} extra={check.unsupported} | {check.claim.text}"
        )
        if check.passage >= 0:
            assert text[check.start : check.end] == check.quote
    kept = {c.claim.text for c in checks if c.supported}
    assert kept == set(FAITHFUL), (MIN_LEXICAL, MIN_COSINE)


def test_a_claim_is_only_checked_against_the_sources_it_cites(article, embedder):
    passages, _, text = article
    cut = text.index("Washington announced")
    # Source [1] shows the article up to the EXIM sentence, source [2] shows the rest.
    sources = [
        Source(n=1, passage=0, start=0, end=cut - 2),
        Source(n=2, passage=0, start=cut, end=len(text)),
    ]
    claim = "The US EXIM Bank approved $1.25 billion in financing for Reko Diq."
    wrong, right, uncited = verify(
        [Claim(claim, (1,)), Claim(claim, (2,)), Claim(claim, ())], sources, passages, embedder
    )
    assert not wrong.supported
    assert right.supported and right.start >= cut
    assert uncited.supported, "a claim citing no existing source is checked against all"
