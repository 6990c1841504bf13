"""The reader model: the shipped weights load offline and read; training runs end to end; the
answer step takes its short answer; a missing or corrupt model is a clear error."""

from __future__ import annotations

import json
import shutil

import pytest

from qa.answering import extractive as answering
from qa.answering.reader import (
    MODEL_DIR,
    WEIGHTS,
    Pair,
    Reader,
    ReaderError,
    Reading,
    default_reader,
)
from qa.language.question import Question
from qa.records import Passage
from qa.training import reader as reader_training
from tests.conftest import ROOT

SQUAD2 = ROOT.parent / "shared" / "data" / "squad2-train"  # read in place, never copied


@pytest.fixture(scope="module")
def reader() -> Reader:
    return default_reader()


def _passage(text: str, title: str) -> Passage:
    return Passage(
        doc_id=f"{title}.txt",
        title=title,
        date=None,
        source=f"{title}.txt",
        start=0,
        end=len(text),
        text=text,
        score=1.0,
    )


def test_the_shipped_model_is_small_and_reads_offline(reader, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (MODEL_DIR / WEIGHTS).stat().st_size < 50e6
    readings = reader.read(
        "When did the museum open?",
        [Pair("The museum opened in 1902 after ten years of building.", "Museum")],
    )
    (r,) = readings
    assert 0.0 <= r.prob <= 1.0
    assert r.span is not None and 0 <= r.span[0] < r.span[1] <= len(
        "The museum opened in 1902 after ten years of building."
    )


def test_a_long_question_is_read_by_its_end_and_never_fails(reader):
    from transformers import AutoTokenizer

    from qa.answering.reader import base_model_dir, clip_question

    asking = "When did the museum open?"
    question = "The museum in the city is large and old. " * 16
    question += asking  # ~160 word pieces of preamble: more than the reader's 128
    sentence = "The museum opened in 1902 after ten years of building."
    (r,) = reader.read(question, [Pair(sentence, "Museum")])
    assert r.span is not None and "1902" in sentence[r.span[0] : r.span[1]]
    passages = [_passage(f"The museum in the city is large and old. {sentence}", "Museum")]
    result = answering.answer_with_reader_span(Question.read(question), passages, _flat_idf, reader)
    assert not result.abstained and "1902" in (result.short_answer or "")
    transformers_tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir()))  # training's
    clipped = clip_question(transformers_tokenizer, question, 64)
    assert clipped.endswith(asking) and len(transformers_tokenizer.tokenize(clipped)) == 64
    assert clip_question(transformers_tokenizer, asking, 64) == asking


# Written for this test, not taken from any eval set: each question has one sentence that
# answers it and a near miss about the same subject with the same kind of fact.
NEAR_MISSES = [
    (
        "When did the bridge open to traffic?",
        "The bridge opened to traffic in 1931, four years after work began.",
        "Construction of the bridge was approved by the city council in 1927.",
    ),
    (
        "Who designed the new library?",
        "The new library was designed by the architect Maria Olsen.",
        "The new library was paid for by the mayor, Peter Grant.",
    ),
    (
        "How many people live in Eastbrook?",
        "Eastbrook has a population of 42,000 people.",
        "Eastbrook has 12 schools and three hospitals.",
    ),
]


@pytest.mark.parametrize(("question", "answer", "near_miss"), NEAR_MISSES)
def test_the_answering_sentence_ranks_above_a_near_miss(reader, question, answer, near_miss):
    hit, miss = reader.read(question, [Pair(answer, "Town"), Pair(near_miss, "Town")])
    assert hit.prob > miss.prob


def test_onnx_runtime_reads_as_torch_does(tmp_path):
    """The reader exported to ONNX (into a fresh cache) gives torch's readings, batched with
    padding too; a second reader reuses the exported file."""
    torch_reader = Reader()
    onnx_reader = Reader(onnx_cache=tmp_path)
    assert (torch_reader.runtime, onnx_reader.runtime) == ("torch", "onnx")
    (exported,) = tmp_path.glob("reader-*/reader-fp32.onnx")
    made = exported.stat().st_mtime_ns
    assert Reader(onnx_cache=tmp_path).runtime == "onnx" and exported.stat().st_mtime_ns == made
    for question, answer, near_miss in NEAR_MISSES:
        pairs = [Pair(answer, "T", near_miss), Pair(near_miss, "T", after=answer), Pair(answer)]
        for a, b in zip(
            torch_reader.read(question, pairs), onnx_reader.read(question, pairs), strict=True
        ):
            assert a.prob == pytest.approx(b.prob, abs=1e-4) and a.span == b.span
            assert a.span_prob == pytest.approx(b.span_prob, abs=1e-3)


def test_the_rules_answer_takes_the_readers_short_answer_and_nothing_else(reader):
    question, answer, near_miss = NEAR_MISSES[0]
    passages = [_passage(f"{near_miss} {answer}", "Bridge")]
    rules = answering.answer(Question.read(question), passages, _flat_idf)
    read = answering.read_sentences(Question.read(question), passages, _flat_idf, reader)
    result = answering.with_reader_span(rules, read, answering.ReaderPolicy())
    plain = answering.answer_with_reader_span(
        Question.read(question), passages, _flat_idf, reader, evidence=False
    )
    assert plain == result  # what the answer step gives without confidence
    assert result.citations == rules.citations and result.answer == rules.answer
    assert read.ranked[0].text in rules.answer  # the reader's span comes from the rules' choice
    assert result.short_answer and result.short_answer in read.ranked[0].text
    unsure = answering.ReaderPolicy(min_span_prob=1.01)  # no span is ever likely enough
    assert answering.with_reader_span(rules, read, unsure).short_answer == rules.short_answer
    refused = answering.abstain(Question.read(question), passages, "no sentence says")
    assert answering.with_reader_span(refused, read, answering.ReaderPolicy()) is refused


def _flat_idf(term: str) -> float:
    return 3.0


class ScriptedReader:
    """Stands in for the model where the decision, not the model, is under test: a fixed
    probability per sentence, found by a word in it."""

    def __init__(self, probs: dict[str, float]) -> None:
        self.probs = probs

    def read(self, question, pairs):
        out = []
        for pair in pairs:
            prob = max((p for w, p in self.probs.items() if w in pair.sentence), default=0.0)
            out.append(Reading(prob=prob, span=(0, 3), span_prob=0.9))
        return out


def test_an_unlikely_reading_does_not_overrule_the_rules_sentence():
    """The rules decide what answers; the reader gives the short answer and evidence only (its
    low probability lowers the calibrated confidence in the engine, not the answer here)."""
    text = "The tower is tall. The tower was built in 1890 by the city."
    passages = [_passage(text, "Tower")]
    question = "When was the tower built?"
    rules = answering.answer(Question.read(question), passages, _flat_idf)
    assert not rules.abstained
    unsure = ScriptedReader({"1890": 0.04})
    kept = answering.answer_with_reader_span(Question.read(question), passages, _flat_idf, unsure)
    assert not kept.abstained and kept.citations == rules.citations
    assert kept.evidence["reader_prob"] == pytest.approx(0.04)


def test_perturbed_twins_swap_a_stated_name_or_number_for_one_the_sentence_never_mentions():
    import random

    pair = Pair(
        "The bridge over the Tyne opened in 1931, built by Dorman Long.",
        "Bridges",
        before="Work on it began in 1927.",
    )
    pool = {"name": ["Tyne", "Wear", "Dorman Long", "Arrol"], "number": ["1927", "1931", "1958"]}
    seen = set()
    for seed in range(40):
        twin = reader_training.perturb(
            "When did the bridge over the Tyne open?", pair, pool, random.Random(seed)
        )
        assert twin is not None and twin != "When did the bridge over the Tyne open?"
        seen.add(twin)
    # only names from the pool that the sentence and its context never mention
    assert seen == {
        "When did the bridge over the Wear open?",
        "When did the bridge over the Arrol open?",
    }
    twin = reader_training.perturb(
        "What happened in 1931 to the bridge?", pair, pool, random.Random(0)
    )
    assert twin == "What happened in 1958 to the bridge?"  # a year for a year, not 1927 (context)
    negated = [
        reader_training.perturb("When was the bridge opened?", pair, pool, random.Random(s))
        for s in range(20)
    ]  # nothing to swap: negated, for a share of them
    assert "When wasn't the bridge opened?" in negated and None in negated
    assert reader_training.perturb("Why wasn't it opened?", pair, pool, random.Random(0)) is None


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReaderError, match="missing.*qa train reader"):
        Reader(tmp_path)


def test_qa_reader_model_names_the_model_folder(tmp_path, monkeypatch):
    from qa.config import get_settings

    monkeypatch.setenv("QA_READER_MODEL", str(tmp_path / "retrained"))
    get_settings.cache_clear()
    try:
        with pytest.raises(ReaderError, match="retrained.*missing"):
            default_reader()
    finally:
        get_settings.cache_clear()


def test_a_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "reader"
    shutil.copytree(MODEL_DIR, bad)
    (bad / WEIGHTS).write_bytes(b"not a safetensors file")
    with pytest.raises(ReaderError, match="cannot be loaded"):
        Reader(bad)


def test_engine_without_the_reader_uses_the_rules(tmp_path):
    from qa.config import Settings
    from qa.engine import Engine
    from tests.conftest import FakeEmbedder

    engine = Engine(tmp_path, embedder=FakeEmbedder(), settings=Settings(reader=False))
    assert engine.reader is None


@pytest.mark.skipif(not SQUAD2.is_dir(), reason=f"needs {SQUAD2} (shared data)")
def test_training_runs_end_to_end_on_a_tiny_slice(tmp_path):
    out = tmp_path / "reader"
    figures = reader_training.train(
        SQUAD2, out, epochs=1, batch_size=8, limit=6, val_questions=4, val_loss_pairs=8
    )
    assert figures["train_questions"] == 6 and figures["answerable"] + figures["unanswerable"] == 4
    for name in (WEIGHTS, "reader.json", "training.png", "log_history.json"):
        assert (out / name).is_file()
    readings = Reader(out).read("When?", [Pair("In 1900.", "T")])
    assert 0.0 <= readings[0].prob <= 1.0


@pytest.mark.skipif(not SQUAD2.is_dir(), reason=f"needs {SQUAD2} (shared data)")
def test_a_null_span_reader_trains_and_reads_its_no_answer_span(tmp_path):
    out = tmp_path / "reader"
    figures = reader_training.train(
        SQUAD2,
        out,
        epochs=1,
        batch_size=8,
        limit=6,
        val_questions=4,
        val_loss_pairs=8,
        null_span=True,
    )
    assert not any(k.startswith(("span_vs_null", "mean_")) for k in figures)  # variants gone
    meta = json.loads((out / "reader.json").read_text())
    assert meta["null_span"] is True
    pairs = [Pair("The castle was built in 1066.", "T"), Pair("It rained.", "T")]
    by_head = Reader(out).read("When was the castle built?", pairs)
    assert all(r.null_prob > 0 for r in by_head)  # the "no answer" span is a real option
    # (for the confidence's evidence); the probability stays the answerability head's
    meta["answerability"] = "span_vs_null"  # a variant that was tried and removed
    (out / "reader.json").write_text(json.dumps(meta))
    with pytest.raises(ReaderError, match="answerability 'span_vs_null' was removed"):
        Reader(out)


@pytest.mark.skipif(not SQUAD2.is_dir(), reason=f"needs {SQUAD2} (shared data)")
def test_null_span_training_points_negative_pairs_at_cls(tmp_path):
    from transformers import AutoTokenizer

    from qa.answering.reader import base_model_dir

    corpus = reader_training.load(SQUAD2)
    train, _ = reader_training.split(corpus)
    rows = reader_training.build_examples(corpus, train[:12])
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir()))
    plain = reader_training.Features(tokenizer, rows, 80)
    null = reader_training.Features(tokenizer, rows, 80, null_span=True)
    assert any(not r.label for r in rows) and any(r.label for r in rows)
    for row, a, b in zip(rows, plain.items, null.items, strict=True):
        if row.label:  # answers keep their span, inside the sentence
            assert a["start_positions"] == b["start_positions"] != 0
        else:
            assert a["start_positions"] == a["end_positions"] == -100
            assert b["start_positions"] == b["end_positions"] == 0


@pytest.mark.skipif(not SQUAD2.is_dir(), reason=f"needs {SQUAD2} (shared data)")
def test_training_pairs_split_by_article_and_skip_eval_questions(tmp_path):
    corpus = reader_training.load(SQUAD2, {"When did the 1973 oil crisis begin?"})
    assert "5725b33f6a3fe71400b8952d" in corpus.excluded
    train, val = reader_training.split(corpus)
    assert {q.article for q in train}.isdisjoint({q.article for q in val})
    assert {q.article for q in val} == set(reader_training.VALIDATION_ARTICLES)
    rows = reader_training.build_examples(corpus, train[:50])
    for row in rows:
        if row.label:
            a, b = row.span
            assert any(row.pair.sentence[a:b] == ans for ans in _answers(corpus, row.qid))
        else:
            assert row.span is None


def _answers(corpus, qid):
    return next(q.answers for q in corpus.questions if q.id == qid)


@pytest.mark.skipif(not SQUAD2.is_dir(), reason=f"needs {SQUAD2} (shared data)")
def test_other_paragraph_negatives_come_from_the_same_article_and_hold_no_answer():
    corpus = reader_training.load(SQUAD2)
    train, _ = reader_training.split(corpus)
    questions = train[:40]
    plain = reader_training.build_examples(corpus, questions)
    more = reader_training.build_examples(corpus, questions, other_negatives=2)
    sentences = reader_training.article_sentences(corpus)
    for q in questions:
        mine = [r for r in more if r.qid == q.id]
        assert len(mine) == len([r for r in plain if r.qid == q.id]) + 2
        own = set(reader_training.pairs_of(corpus.paragraphs[(q.article, q.para)], ""))
        own = {p.sentence for p in own}
        elsewhere = [r for r in mine if r.pair.sentence not in own]
        assert len(elsewhere) == 2
        for row in elsewhere:
            assert row.label == 0 and row.span is None and row.unanswerable == q.unanswerable
            found = [s for s in sentences[q.article] if s.pair == row.pair]
            assert found and all(s.para != q.para for s in found)
            assert not any(a in row.pair.sentence for a in q.answers)


class CountingReader:
    """The real reader, counting the pairs it reads."""

    def __init__(self, reader: Reader) -> None:
        self.reader, self.pairs_read = reader, 0

    def read(self, question, pairs):
        self.pairs_read += len(pairs)
        return self.reader.read(question, pairs)


def test_without_confidence_the_answer_step_reads_one_sentence(reader, corpus_index, embedder):
    """`qa bench ask` times confidence_mode="off" as the answer step before calibrated
    confidence; the default reads what it did (the rules' sentence alone) and adds the
    evidence made from that reading."""
    from qa.engine import Engine

    question = "How much did the Northern Development Bank approve for Kestrel Ridge?"
    counting = CountingReader(reader)
    plain = Engine(corpus_index, embedder, reader=counting, confidence_mode="off").ask(question)
    assert counting.pairs_read == 1 and plain.short_answer and not plain.evidence
    counting.pairs_read = 0
    rated = Engine(corpus_index, embedder, reader=counting).ask(question)
    assert counting.pairs_read == 1 and rated.evidence
    assert rated.citations == plain.citations
