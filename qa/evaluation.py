"""`qa eval`: run an eval set through `Engine.ask` (what the service answers) and score it.

Every question goes through the same core call the HTTP service makes, with its history. On the
side, each question's passages are also ranked by BM25 alone, by dense vectors alone and by the
default fusion, and answered from each, so the three retrievers are compared in one run on one
index. `DEFINITIONS` says what every reported figure means; the report repeats it.
"""

from __future__ import annotations

import json
import re
import string
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from qa import answering, chat, retrieval
from qa.errors import InvalidInput, QAError
from qa.models import Answer, Passage

KS = (1, 5, 10)  # recall@k and hit@k reported; the curve goes 1..MAX_K
MAX_K = 10
RETRIEVERS = {"bm25": 0.0, "dense": 1.0, "fused": retrieval.DENSE_WEIGHT}  # name -> dense_weight
PIPELINE = "fused"  # the retriever Engine.ask uses; its answer row comes from Engine.ask itself
SWEEP = tuple(round(0.2 + 0.05 * i, 2) for i in range(11))  # min_coverage values calibrated

DEFINITIONS = f"""\
All figures are shares between 0 and 1 unless marked ms. *Answerable* questions have gold
answers; *unanswerable* ones (`"unanswerable": true`) have none in the corpus.

**Matching a gold answer.** Text *contains* a gold answer when, after SQuAD normalization of
both (lower case, `’` read as `'`, punctuation removed, the articles a/an/the removed, whitespace
collapsed), the gold answer occurs in the text as whole words. Punctuation is tried both removed
(as SQuAD does: "U.S." = "US") and read as a word break ("Diq’s" holds "Diq"). Any one of a
question's gold answers counts.

Retrieval (answerable questions; each retriever ranks the same index for the same query, the
question rewritten with its history exactly as `Engine.ask` does; top {MAX_K} passages once):
- **answer recall@k**: share of questions where one of the first k passages contains a gold answer.
- **gold-doc hit@k**: share of questions where one of the first k passages comes from the gold
  document.
- **MRR**: mean of 1/rank of the first passage that contains a gold answer (0 when none of the
  first {MAX_K} does).
- Retrievers: **bm25** = BM25 alone (`dense_weight=0`), **dense** = MiniLM vectors alone
  (`dense_weight=1`), **fused** = the default pipeline (`dense_weight={retrieval.DENSE_WEIGHT}`).

Answers (the **fused** row is `Engine.ask`, the function the HTTP service calls; the bm25 and
dense rows answer with the same `answering.answer` from those retrievers' top-k passages):
- **fact recall**: share of answerable questions whose answer (not an abstention; citation
  markers removed) contains a gold answer.
- **short answer rate**: share of answered answerable questions that come with a short answer.
- **short EM / F1**: SQuAD exact match and token F1 (best over the gold answers) of the short
  answer, over answerable questions that have one.

Citations:
- **verbatim**: share of all citations returned (any question) whose quote equals the cited
  document's text at `[start:end]` (`Engine.document(doc_id).text`). Must be 1.
- **support**: share of answered answerable questions where a gold answer lies inside one
  cited quote.

Abstention:
- **abstain (unanswerable)**: share of unanswerable questions where the answer abstains
  ("the sources don't say"). Higher is better.
- **wrong abstain (answerable)**: share of answerable questions where it abstains. Lower is
  better.

Calibration (extractive answers): the abstention threshold (`QA_MIN_COVERAGE`, default 0.40:
the share of the question's idf weight a supporting sentence must cover) is swept over
{SWEEP[0]}..{SWEEP[-1]} on the same passages `Engine.ask` retrieved; for each value, **abstain
(unans.)**, **answered (answerable)** = 1 - wrong abstain, and **fact recall** as above. The
default is the value that keeps answered >= 0.95 on the dev sets while abstaining most (README,
"Answers"); on your own questions, pick yours from this table and set `QA_MIN_COVERAGE`.

Latency: wall time of one `Engine.ask` call per question (warm: the model and the index are
loaded by one untimed question first), **p50** and **p95** over all questions, in ms.
"""


class Turn(BaseModel):
    """An earlier turn of the conversation a follow-up question leans on."""

    role: Literal["user", "assistant"]
    content: str


class EvalQuestion(BaseModel):
    """One line of a set's questions.jsonl (format: eval/README.md)."""

    id: str
    question: str
    answers: list[str] = Field(default_factory=list)
    doc_id: str | None = None
    evidence: str | None = None
    unanswerable: bool = False
    history: list[Turn] = Field(default_factory=list)
    note: str | None = None

    def messages(self) -> list[chat.Message]:
        return [{"role": t.role, "content": t.content} for t in self.history]


def load_questions(set_dir: Path) -> list[EvalQuestion]:
    """The questions of an eval set folder."""
    path = Path(set_dir) / "questions.jsonl"
    if not path.is_file():
        raise InvalidInput(f"{set_dir} is not an eval set: no questions.jsonl (see eval/README.md)")
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                questions.append(EvalQuestion.model_validate_json(line))
            except ValueError as exc:
                raise InvalidInput(f"{path}:{n}: not a valid question: {exc}") from exc
    if not questions:
        raise InvalidInput(f"{path} holds no questions")
    return questions


# ---------------------------------------------------------------- metrics

_TYPOGRAPHIC = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKERS = re.compile(r"\s*\[\d+\]")


def normalize_answer(text: str, punct_as_space: bool = False) -> str:
    """SQuAD normalization (lower, no punctuation, no articles, one space), `’` read as `'`."""
    text = text.lower().translate(_TYPOGRAPHIC)
    text = _PUNCT.sub(" " if punct_as_space else "", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """Whether a gold answer occurs in `text` as whole words, after normalization."""
    for as_space in (False, True):
        hay = f" {normalize_answer(text, as_space)} "
        for gold in golds:
            needle = normalize_answer(gold, as_space)
            if needle and f" {needle} " in hay:
                return True
    return False


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD exact match, best over the gold answers."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD token F1, best over the gold answers."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def first_hit(texts: Sequence[str], golds: Sequence[str]) -> int | None:
    """1-based rank of the first text containing a gold answer, or None."""
    return next((i for i, t in enumerate(texts, start=1) if contains_answer(t, golds)), None)


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of ranks that are at most k (None = not found)."""
    return _mean([r is not None and r <= k for r in ranks])


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    return _mean([1 / r if r else 0.0 for r in ranks])


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def answer_text(answer: Answer) -> str:
    """The answer without its citation markers ("[1]" would match a gold "1")."""
    return _MARKERS.sub("", answer.answer)


def _mean(flags: Sequence[float | bool]) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


# ---------------------------------------------------------------- one question


@dataclass
class Scorer:
    """Scores answers against gold, checking quotes against the documents' text."""

    document_text: Callable[[str], str]
    _texts: dict[str, str] = field(default_factory=dict)

    def text(self, doc_id: str) -> str:
        if doc_id not in self._texts:
            self._texts[doc_id] = self.document_text(doc_id)
        return self._texts[doc_id]

    def answer(self, q: EvalQuestion, result: Answer) -> dict[str, Any]:
        """Flags for one answer (JSON-ready)."""
        citations = [
            {
                "n": c.n,
                "doc_id": c.doc_id,
                "start": c.start,
                "end": c.end,
                "quote": c.quote,
                "verbatim": self.text(c.doc_id)[c.start : c.end] == c.quote,
                "supports": bool(q.answers) and contains_answer(c.quote, q.answers),
            }
            for c in result.citations
        ]
        answered = not result.abstained
        short = result.short_answer
        return {
            "abstained": result.abstained,
            "fact_hit": answered and contains_answer(answer_text(result), q.answers),
            "supported": answered and any(c["supports"] for c in citations),
            "short_answer": short,
            "em": exact_match(short, q.answers) if short and q.answers else None,
            "f1": f1_score(short, q.answers) if short and q.answers else None,
            "citations": citations,
        }


def outcome(q: EvalQuestion, flags: dict[str, Any]) -> str:
    """A one-word verdict, to find failures quickly in the results file."""
    if q.unanswerable:
        return "abstained-ok" if flags["abstained"] else "FALSE-ANSWER"
    if flags["abstained"]:
        return "WRONG-ABSTAIN"
    return "ok" if flags["fact_hit"] else "MISSED"


EXTRACTIVE = "fused extractive"  # in LLM mode: the extractive answer from the same passages


def evaluate_question(
    engine,
    snap,
    idf: answering.Idf,
    scorer: Scorer,
    q: EvalQuestion,
    top_k: int,
    mode: str | None = None,
) -> dict[str, Any]:
    """Ask one question through Engine.ask, and rank/answer it with each retriever."""
    t0 = time.perf_counter()
    result = engine.ask(q.question, history=q.messages(), top_k=top_k, mode=mode)
    latency = (time.perf_counter() - t0) * 1e3
    main = scorer.answer(q, result)
    record: dict[str, Any] = {
        "id": q.id,
        "outcome": outcome(q, main),
        "question": q.question,
        "history": q.messages(),
        "unanswerable": q.unanswerable,
        "gold_answers": q.answers,
        "gold_doc": q.doc_id,
        "query": result.query,
        "answer": result.answer,
        **main,
        "latency_ms": round(latency, 2),
        "timings_ms": result.timings_ms,
        "mode": result.mode,
        "removed_sentences": result.removed_sentences,
        "retrieval": {},
        "answers_by_retriever": {},
        "top_passages": [_passage_brief(p) for p in result.passages[:3]],
    }
    if result.mode == "extractive":
        record["calibration"] = {
            f"{t:.2f}": {
                k: scorer.answer(
                    q, answering.answer(q.question, result.query, result.passages, idf, t)
                )[k]
                for k in ("abstained", "fact_hit")
            }
            for t in SWEEP
        }
    query = chat.rewrite(q.question, q.messages())
    qvec = engine.embedder.embed_query(query)
    for name, weight in RETRIEVERS.items():
        rows = retrieval.score_chunks(snap, engine.embedder, query, None, weight, qvec)
        ranked = retrieval.merge_passages(snap, rows, MAX_K)
        record["retrieval"][name] = {
            "answer_rank": first_hit([p.text for p in ranked], q.answers) if q.answers else None,
            "doc_rank": next(
                (i for i, p in enumerate(ranked, start=1) if p.doc_id == q.doc_id), None
            ),
        }
        if name == PIPELINE and result.mode == "extractive":
            continue
        passages = retrieval.merge_passages(snap, rows, top_k)
        other = scorer.answer(q, answering.answer(q.question, query, passages, idf))
        record["answers_by_retriever"][EXTRACTIVE if name == PIPELINE else name] = {
            k: other[k] for k in ("abstained", "fact_hit", "supported", "short_answer", "em", "f1")
        } | {"verbatim": [c["verbatim"] for c in other["citations"]]}
    return record


def _passage_brief(p: Passage) -> dict[str, Any]:
    text = " ".join(p.text.split())
    return {
        "doc_id": p.doc_id,
        "start": p.start,
        "end": p.end,
        "score": p.score,
        "text": text[:200] + ("…" if len(text) > 200 else ""),
    }


# ---------------------------------------------------------------- the whole set


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate figures over per-question records (see DEFINITIONS)."""
    answerable = [r for r in records if not r["unanswerable"]]
    unanswerable = [r for r in records if r["unanswerable"]]
    retrieval_summary = {}
    for name in RETRIEVERS:
        answer_ranks = [r["retrieval"][name]["answer_rank"] for r in answerable]
        doc_ranks = [r["retrieval"][name]["doc_rank"] for r in answerable]
        retrieval_summary[name] = {
            **{f"recall@{k}": recall_at_k(answer_ranks, k) for k in KS},
            **{f"hit@{k}": recall_at_k(doc_ranks, k) for k in KS},
            "mrr": mean_reciprocal_rank(answer_ranks),
            "recall_curve": [recall_at_k(answer_ranks, k) for k in range(1, MAX_K + 1)],
            "hit_curve": [recall_at_k(doc_ranks, k) for k in range(1, MAX_K + 1)],
        }
    answers_summary = {}
    names = [n for n in RETRIEVERS if n != PIPELINE]
    if any(EXTRACTIVE in r["answers_by_retriever"] for r in records):
        names.append(EXTRACTIVE)
    for name in [*names, PIPELINE]:
        if name == PIPELINE:
            view = list(records)
            verbatim = [c["verbatim"] for r in records for c in r["citations"]]
        else:
            view = [{**r, **r["answers_by_retriever"][name]} for r in records]
            verbatim = [v for r in view for v in r["verbatim"]]
        answers_summary[name] = _answer_figures(view, verbatim)
    latencies = [r["latency_ms"] for r in records]
    parts = {
        part: percentile([r["timings_ms"].get(part, 0.0) for r in records], 50)
        for part in ("rewrite", "retrieve", "answer")
    }
    return {
        "calibration": calibration(records),
        "n_questions": len(records),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "n_with_history": sum(bool(r["history"]) for r in records),
        "outcomes": dict(Counter(r["outcome"] for r in records)),
        "mode": records[0]["mode"] if records else None,
        "removed_sentences": sum(r["removed_sentences"] for r in records),
        "answers_with_removals": _mean([r["removed_sentences"] > 0 for r in records]),
        "retrieval": retrieval_summary,
        "answers": answers_summary,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "mean": _mean(latencies),
            "max": max(latencies, default=None),
            "p50_parts": parts,
        },
    }


def calibration(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Abstention and fact recall at each swept threshold (empty for LLM runs)."""
    if not records or "calibration" not in records[0]:
        return []
    answerable = [r for r in records if not r["unanswerable"]]
    unanswerable = [r for r in records if r["unanswerable"]]
    points = []
    for key in records[0]["calibration"]:
        points.append(
            {
                "min_coverage": float(key),
                "abstain_unanswerable": _mean(
                    [r["calibration"][key]["abstained"] for r in unanswerable]
                ),
                "answered_answerable": _mean(
                    [not r["calibration"][key]["abstained"] for r in answerable]
                ),
                "fact_recall": _mean([r["calibration"][key]["fact_hit"] for r in answerable]),
            }
        )
    return points


def _answer_figures(view: Sequence[dict[str, Any]], verbatim: Sequence[bool]) -> dict[str, Any]:
    answerable = [r for r in view if not r["unanswerable"]]
    answered = [r for r in answerable if not r["abstained"]]
    with_short = [r for r in answered if r["short_answer"]]
    return {
        "fact_recall": _mean([r["fact_hit"] for r in answerable]),
        "short_answer_rate": _mean([bool(r["short_answer"]) for r in answered]),
        "short_em": _mean([r["em"] for r in with_short]),
        "short_f1": _mean([r["f1"] for r in with_short]),
        "verbatim": _mean(verbatim),
        "n_citations": len(verbatim),
        "support": _mean([r["supported"] for r in answered]),
        "abstain_unanswerable": _mean([r["abstained"] for r in view if r["unanswerable"]]),
        "wrong_abstain": _mean([r["abstained"] for r in answerable]),
    }


@dataclass
class EvalRun:
    """Everything one `qa eval` run measured."""

    set_name: str
    index_dir: Path
    top_k: int
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    info: dict[str, Any]


def run_eval(
    set_dir: Path,
    index_dir: Path | None = None,
    top_k: int | None = None,
    build: bool = True,
    progress: bool = False,
    engine=None,
    mode: str | None = None,
) -> EvalRun:
    """Index the set's corpus (incrementally), ask every question, and score the answers."""
    from qa.config import get_settings
    from qa.engine import Engine
    from qa.indexing import index_paths

    set_dir = Path(set_dir)
    questions = load_questions(set_dir)
    settings = get_settings()
    index_dir = Path(index_dir or default_index_dir(set_dir))
    engine = engine or Engine(index_dir)
    top_k = top_k or settings.top_k
    indexed = None
    if build:
        corpus = set_dir / "corpus"
        if not corpus.is_dir():
            raise InvalidInput(f"{set_dir} has no corpus/ folder to index")
        indexed = index_paths(
            [corpus],
            index_dir,
            engine.embedder,
            chunking_params(),
            batch_size=settings.embed_batch_size,
            progress=progress,
        )
        if not indexed.ok:
            raise InvalidInput(f"could not index {corpus}: {indexed.failed}")
    snap = engine.snapshot()
    idf = answering.Idf(snap)
    scorer = Scorer(lambda doc_id: engine.document(doc_id).text)
    warm = questions[0]
    engine.ask(warm.question, history=warm.messages(), top_k=top_k, mode=mode)

    from tqdm import tqdm

    records = []
    for q in tqdm(questions, desc="eval", unit="q", disable=not progress):
        try:
            records.append(evaluate_question(engine, snap, idf, scorer, q, top_k, mode))
        except QAError as exc:
            raise QAError(f"question {q.id}: {exc}") from exc
    info = run_info() | {
        "set": set_dir.name,
        "set_dir": str(set_dir),
        "index_dir": str(index_dir),
        "index_version": snap.version,
        "n_chunks": snap.n_chunks,
        "n_documents": len(snap.manifest["documents"]),
        "model": snap.manifest["model"],
        "top_k": top_k,
        "dense_weight": retrieval.DENSE_WEIGHT,
        "index_report": indexed.summary() if indexed else "not rebuilt (--no-build)",
    }
    summary = summarize(records) | {"min_coverage": engine.min_coverage}
    return EvalRun(set_dir.name, index_dir, top_k, records, summary, info)


def default_index_dir(set_dir: Path) -> Path:
    return Path("index") / f"eval-{Path(set_dir).resolve().name}"


def chunking_params():
    """The chunking the CLI's `qa index` uses (from the settings)."""
    from qa.chunking import ChunkingParams
    from qa.config import get_settings

    settings = get_settings()
    return ChunkingParams(settings.chunk_tokens, settings.chunk_overlap_sentences)


def run_info() -> dict[str, Any]:
    """Where and when a measurement was made, to keep beside its figures."""
    import os
    import platform

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": (commit + ("+dirty" if dirty else "")) or None,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        # Other work on the machine slows every timing; keep the load beside the figures.
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Threshold:
    option: str  # the CLI option that sets it
    label: str
    path: tuple[str, ...]  # where the figure sits in the summary
    value: float
    at_least: bool = True


THRESHOLDS = {  # keyword -> (option, label, path in the summary, at_least)
    "min_answer_recall": (
        "--min-answer-recall",
        "fact recall",
        ("answers", PIPELINE, "fact_recall"),
        True,
    ),
    "min_retrieval_recall5": (
        "--min-retrieval-recall5",
        "answer recall@5 (fused)",
        ("retrieval", PIPELINE, "recall@5"),
        True,
    ),
    "min_abstain": (
        "--min-abstain",
        "abstain (unanswerable)",
        ("answers", PIPELINE, "abstain_unanswerable"),
        True,
    ),
    "max_wrong_abstain": (
        "--max-wrong-abstain",
        "wrong abstain (answerable)",
        ("answers", PIPELINE, "wrong_abstain"),
        False,
    ),
    "min_verbatim": ("--min-verbatim", "verbatim", ("answers", PIPELINE, "verbatim"), True),
    "min_support": ("--min-support", "support", ("answers", PIPELINE, "support"), True),
}


def thresholds(**given: float | None) -> list[Threshold]:
    """Thresholds from keyword arguments named as in THRESHOLDS; None ones are skipped."""
    out = []
    for key, value in given.items():
        if value is not None:
            option, label, path, at_least = THRESHOLDS[key]
            out.append(Threshold(option, label, path, value, at_least))
    return out


def missed(summary: dict[str, Any], checks: Sequence[Threshold]) -> list[str]:
    """A message for every threshold the summary misses."""
    problems = []
    for t in checks:
        figure: Any = summary
        for key in t.path:
            figure = figure[key]
        if figure is None:
            problems.append(f"{t.label} was not measured (no questions of that kind): {t.option}")
        elif (figure < t.value) if t.at_least else (figure > t.value):
            word = "below" if t.at_least else "above"
            problems.append(f"{t.label} {figure:.3f} is {word} {t.option} {t.value:g}")
    return problems


# ---------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, padded so it also reads well in a terminal."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *[line(r) for r in cells[1:]]])


def _label(name: str, mode: str | None = None) -> str:
    if name == PIPELINE:
        return f"fused w={retrieval.DENSE_WEIGHT} (Engine.ask, {mode or 'extractive'})"
    return name


def summary_tables(summary: dict[str, Any]) -> str:
    """The retrieval, answer and latency tables (markdown)."""
    s = summary
    retrieval_rows = [
        [
            _label(name) if name != PIPELINE else f"fused w={retrieval.DENSE_WEIGHT}",
            *[_fmt(r[f"recall@{k}"]) for k in KS],
            *[_fmt(r[f"hit@{k}"]) for k in KS],
            _fmt(r["mrr"]),
        ]
        for name, r in s["retrieval"].items()
    ]
    answer_rows = [
        [
            _label(name, s.get("mode")),
            _fmt(a["fact_recall"]),
            _fmt(a["short_answer_rate"]),
            _fmt(a["short_em"]),
            _fmt(a["short_f1"]),
            _fmt(a["verbatim"]),
            _fmt(a["support"]),
            _fmt(a["abstain_unanswerable"]),
            _fmt(a["wrong_abstain"]),
        ]
        for name, a in s["answers"].items()
    ]
    lat = s["latency_ms"]
    parts = ", ".join(f"{k} {_fmt(v, 1)}" for k, v in lat["p50_parts"].items())
    parts_md = [
        f"{s['n_questions']} questions: {s['n_answerable']} answerable, "
        f"{s['n_unanswerable']} unanswerable, {s['n_with_history']} with history. "
        f"Outcomes: {', '.join(f'{k} {v}' for k, v in sorted(s['outcomes'].items()))}.",
        "Retrieval (answerable questions)\n\n"
        + markdown_table(
            [
                "retriever",
                *[f"recall@{k}" for k in KS],
                *[f"doc hit@{k}" for k in KS],
                "MRR",
            ],
            retrieval_rows,
        ),
        "Answers, citations, abstention\n\n"
        + markdown_table(
            [
                "answers from",
                "fact recall",
                "short rate",
                "short EM",
                "short F1",
                "verbatim",
                "support",
                "abstain (unans.)",
                "wrong abstain",
            ],
            answer_rows,
        ),
        (
            f"LLM mode: {s['removed_sentences']} generated sentences removed as unsupported; "
            f"{_fmt(s['answers_with_removals'])} of answers had one removed."
            if s.get("mode") == "llm"
            else ""
        ),
        calibration_table(s["calibration"], s.get("min_coverage", answering.MIN_COVERAGE)),
        f"Latency of Engine.ask (ms, warm): p50 {_fmt(lat['p50'], 1)}, "
        f"p95 {_fmt(lat['p95'], 1)}, mean {_fmt(lat['mean'], 1)}, max {_fmt(lat['max'], 1)}"
        f" (p50 of parts: {parts})",
    ]
    return "\n\n".join(part for part in parts_md if part)


def calibration_table(points: Sequence[dict[str, Any]], default: float) -> str:
    """The threshold sweep as markdown, the default marked."""
    if not points:
        return ""
    rows = [
        [
            f"**{p['min_coverage']:.2f}** (default)"
            if abs(p["min_coverage"] - default) < 1e-9
            else f"{p['min_coverage']:.2f}",
            _fmt(p["abstain_unanswerable"]),
            _fmt(p["answered_answerable"]),
            _fmt(p["fact_recall"]),
        ]
        for p in points
    ]
    return "Abstention threshold (extractive; same passages, `min_coverage` swept)\n\n" + (
        markdown_table(
            ["min_coverage", "abstain (unans.)", "answered (answerable)", "fact recall"], rows
        )
    )


def markdown_report(run: EvalRun, max_failures: int = 40) -> str:
    """The full report: setup, tables, failures to read, definitions."""
    i = run.info
    head = (
        f"# Eval: {run.set_name}\n\n"
        f"- index `{i['index_dir']}` ({i['index_version']}, {i['n_documents']} documents, "
        f"{i['n_chunks']} chunks), model `{i['model']}`, top_k {run.top_k}\n"
        f"- indexing: {i['index_report']}\n"
        f"- {i['created_at']}, commit {i['commit']}, python {i['python']}, {i['machine']}, "
        f"load average {i['load_avg_1_5_15']}\n"
    )
    failures = ["## Failures (default pipeline)\n"]
    for kind, title in (
        ("MISSED", "Answered, but without a gold answer"),
        ("WRONG-ABSTAIN", "Abstained on an answerable question"),
        ("FALSE-ANSWER", "Answered an unanswerable question"),
    ):
        bad = [r for r in run.records if r["outcome"] == kind]
        failures.append(f"### {title} ({len(bad)})\n")
        for r in bad[:max_failures]:
            gold = " | ".join(r["gold_answers"]) or "(none: unanswerable)"
            rank = r["retrieval"][PIPELINE]["answer_rank"]
            answer = r["answer"] if len(r["answer"]) < 300 else r["answer"][:300] + "…"
            failures.append(
                f"- `{r['id']}` {r['question']}"
                + (f" _(searched: {r['query']})_" if r["query"] != r["question"] else "")
                + f"\n  - gold: {gold}; gold passage rank (fused): {rank or '>10'}"
                + (f"\n  - short answer: {r['short_answer']}" if r["short_answer"] else "")
                + f"\n  - answer: {answer}"
            )
        if len(bad) > max_failures:
            failures.append(f"- … and {len(bad) - max_failures} more in results.jsonl")
        failures.append("")
    return "\n".join(
        [
            head,
            summary_tables(run.summary),
            "",
            "![recall@k and answer metrics](report.png)",
            "",
            *failures,
            "## Definitions\n",
            DEFINITIONS,
        ]
    )


def plot(run: EvalRun, path: Path) -> None:
    """Recall@k curves of the three retrievers, and bars of the answer metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"bm25": "tab:orange", "dense": "tab:blue", "fused": "tab:green"}
    points = run.summary.get("calibration") or []
    if points:
        fig, (left, right, cal) = plt.subplots(1, 3, figsize=(20, 5.2), width_ratios=[1, 1.5, 1])
        plot_calibration(cal, points, run.summary.get("min_coverage", answering.MIN_COVERAGE))
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.2), width_ratios=[1, 1.5])
    ks = list(range(1, MAX_K + 1))
    for name, r in run.summary["retrieval"].items():
        left.plot(ks, r["recall_curve"], "o-", color=colors[name], label=f"{name}: answer recall")
        left.plot(ks, r["hit_curve"], "--", color=colors[name], alpha=0.6, label=f"{name}: doc hit")
    left.set(xlabel="k (passages)", ylabel="share of answerable questions", xticks=ks)
    left.set_title("Retrieval: answer recall@k (solid), gold-doc hit@k (dashed)")
    left.set_ylim(
        max(0.0, min(min(r["recall_curve"]) for r in run.summary["retrieval"].values()) - 0.05),
        1.01,
    )
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")

    metrics = [
        ("fact_recall", "fact recall"),
        ("support", "support"),
        ("verbatim", "verbatim"),
        ("short_em", "short EM"),
        ("short_f1", "short F1"),
        ("abstain_unanswerable", "abstain\n(unans.) ↑"),
        ("wrong_abstain", "wrong abstain\n(answerable) ↓"),
    ]
    answers = run.summary["answers"]
    width = 0.8 / len(answers)
    x = np.arange(len(metrics))
    for j, (name, a) in enumerate(answers.items()):
        values = [a[key] if a[key] is not None else 0.0 for key, _ in metrics]
        offset = (j - (len(answers) - 1) / 2) * width
        label = _label(name, run.summary.get("mode"))
        bars = right.bar(x + offset, values, width, color=colors.get(name, "tab:gray"), label=label)
        right.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=1)
    right.set_xticks(x, [label for _, label in metrics], fontsize=9)
    right.set_ylim(0, 1.12)
    right.set_title("Answers, citations and abstention, by retriever")
    right.legend(fontsize=8, loc="upper right", ncols=3)
    right.grid(axis="y", alpha=0.3)
    s = run.summary
    fig.suptitle(
        f"qa eval {run.set_name}: {s['n_answerable']} answerable + {s['n_unanswerable']} "
        f"unanswerable questions, top_k {run.top_k}; Engine.ask p50 "
        f"{_fmt(s['latency_ms']['p50'], 0)} ms, p95 {_fmt(s['latency_ms']['p95'], 0)} ms"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(ax, points: Sequence[dict[str, Any]], default: float) -> None:
    """Abstention on unanswerables against answers kept, as the threshold moves."""
    x = [p["min_coverage"] for p in points]
    for key, label, style in (
        ("abstain_unanswerable", "abstain on unanswerable ↑", "o-"),
        ("answered_answerable", "answered answerable ↑", "s-"),
        ("fact_recall", "fact recall", "^--"),
    ):
        ax.plot(x, [p[key] if p[key] is not None else np.nan for p in points], style, label=label)
    ax.axvline(default, color="gray", ls=":", label=f"threshold in use ({default:.2f})")
    ax.set(xlabel="min_coverage (share of the question a sentence must cover)", ylim=(0, 1.02))
    ax.set_title("Abstention threshold: calibration sweep")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")


def write_outputs(run: EvalRun, out_dir: Path) -> dict[str, Path]:
    """results.jsonl, summary.json, report.md and report.png in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out_dir / "results.jsonl",
        "summary": out_dir / "summary.json",
        "report": out_dir / "report.md",
        "plot": out_dir / "report.png",
    }
    with open(paths["results"], "w", encoding="utf-8") as handle:
        for r in run.records:
            handle.write(json.dumps(r, ensure_ascii=False) + "\n")
    paths["summary"].write_text(
        json.dumps({"info": run.info, **run.summary}, indent=2, ensure_ascii=False) + "\n"
    )
    paths["report"].write_text(markdown_report(run) + "\n", encoding="utf-8")
    plot(run, paths["plot"])
    return paths
