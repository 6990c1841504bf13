"""Eval sets: where a set's documents and questions are, and its questions as records.

A set is a folder. Its `set.toml` names the corpus (folders or files to index) and the question
files, with paths relative to `root` (the set folder unless `root` says otherwise), so third-party
data is read in place from `../shared/data/` rather than copied into the repository. A folder
without `set.toml` is a set when it holds `corpus/` and `questions.jsonl`. Format: eval/README.md.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from qa.errors import InvalidInput, MissingData
from qa.records import Message

if TYPE_CHECKING:
    from qa.encoders.embedding import Embedder
    from qa.indexing import IndexReport
    from qa.sources.chunking import ChunkingParams

SET_FILE = "set.toml"
# question file formats: ours (eval/README.md), SQuAD's flattened rows, squad2-train's rows,
# and turns of conversations labelled with what the follow-up rewrite must do
FORMATS = ("qa", "squad", "squad2", "realtimeqa", "conversation")
CONVERSATION = "conversation"


class Turn(BaseModel):
    """An earlier turn of the conversation a follow-up question leans on."""

    role: Literal["user", "assistant"]
    content: str


class EvalQuestion(BaseModel):
    """One question of a set (format: eval/README.md)."""

    id: str
    question: str
    answers: list[str] = Field(default_factory=list)
    doc_id: str | None = None
    evidence: str | None = None
    unanswerable: bool = False
    history: list[Turn] = Field(default_factory=list)
    note: str | None = None

    def messages(self) -> list[Message]:
        return [{"role": t.role, "content": t.content} for t in self.history]


class ConversationTurn(BaseModel):
    """One turn of a conversation set: a question after `history`, and what its search query
    must be (format: eval/README.md, "Conversation sets")."""

    id: str
    question: str
    history: list[Turn] = Field(min_length=1)
    doc_id: str | None = None
    # [] = searched as asked; else every item (a phrase, or a list of phrases any one of which
    # will do) is carried from the earlier turns
    carry: list[str | list[str]] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)  # earlier-turn words the query must not carry
    note: str | None = None

    def messages(self) -> list[Message]:
        return [{"role": t.role, "content": t.content} for t in self.history]


@dataclass(frozen=True)
class QuestionFile:
    path: Path
    format: str = "qa"
    articles: tuple[str, ...] = ()  # squad2 only: the articles whose questions are asked


@dataclass(frozen=True)
class EvalSet:
    """Where one set's documents and questions are."""

    name: str
    folder: Path
    corpus: tuple[Path, ...]
    question_files: tuple[QuestionFile, ...]
    data_help: str = ""  # how to get data the set reads in place, said when it is missing

    @property
    def is_conversation(self) -> bool:
        """Whether the set holds conversation turns (measured on the rewrite) not questions."""
        return any(f.format == CONVERSATION for f in self.question_files)

    def require(self, paths: tuple[Path, ...] | list[Path]) -> None:
        """Raise MissingData naming every path that is not there, and how to get it."""
        missing = [p for p in paths if not p.exists()]
        if missing:
            names = ", ".join(f"{p} ({p.resolve()})" for p in missing)
            help_ = self.data_help or f"see {self.folder / 'README.md'}"
            raise MissingData(f"eval set {self.name} needs {names}, which is missing: {help_}")

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every question as a dict in our format, with where it comes from (file:line)."""
        self.require([f.path for f in self.question_files])
        seen: dict[str, int] = {}
        for qfile in self.question_files:
            paragraphs = _squad2_paragraphs(qfile.path) if qfile.format == "squad2" else {}
            for where, row in _json_lines(qfile.path):
                if qfile.format == "squad":
                    row = from_squad(row)
                elif qfile.format == "squad2":
                    if qfile.articles and row["article"] not in qfile.articles:
                        continue
                    row = from_squad2(row, paragraphs)
                elif qfile.format == "realtimeqa":
                    row = from_realtimeqa(row, qfile.path.parent / "docs")
                    # RealTime QA repeats an id now and then (two questions of one week)
                    seen[row["id"]] = n = seen.get(row["id"], 0) + 1
                    row["id"] += f"-{n}" if n > 1 else ""
                yield where, row


def _json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not valid JSON: {exc}") from exc


def _squad2_paragraphs(questions: Path) -> dict[tuple[str, int], str]:
    """squad2-train's paragraphs.jsonl, beside its questions: the evidence of each question."""
    path = questions.with_name("paragraphs.jsonl")
    if not path.is_file():
        raise InvalidInput(f"{path} is missing: squad2 questions need their paragraphs.jsonl")
    return {(r["article"], r["para"]): r["context"] for _, r in _json_lines(path)}


def load_set(set_dir: Path) -> EvalSet:
    """The set in `set_dir`, from its set.toml or the plain corpus/ + questions.jsonl layout."""
    folder = Path(set_dir)
    spec_path = folder / SET_FILE
    if not spec_path.is_file():
        if not (folder / "questions.jsonl").is_file():
            raise InvalidInput(
                f"{folder} is not an eval set: no {SET_FILE} or questions.jsonl "
                "(see eval/README.md)"
            )
        return EvalSet(
            _name(folder), folder, (folder / "corpus",), (QuestionFile(folder / "questions.jsonl"),)
        )
    try:
        spec = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{spec_path}: not valid TOML: {exc}") from exc
    root = folder / spec.get("root", ".")
    try:
        corpus = tuple(_join(root, p) for p in spec["corpus"])
        files = tuple(
            QuestionFile(
                _join(root, q["path"]), q.get("format", "qa"), tuple(q.get("articles", ()))
            )
            for q in spec["questions"]
        )
    except (KeyError, TypeError) as exc:
        raise InvalidInput(
            f"{spec_path}: needs corpus = [paths] and [[questions]] with a path (eval/README.md)"
        ) from exc
    for f in files:
        if f.format not in FORMATS:
            raise InvalidInput(f"{spec_path}: format {f.format!r} is not one of {FORMATS}")
    if len({f.format == CONVERSATION for f in files}) > 1:
        raise InvalidInput(
            f"{spec_path}: a set holds either conversation turns or questions, not both"
        )
    return EvalSet(_name(folder), folder, corpus, files, spec.get("data_help", ""))


def _join(root: Path, path: str) -> Path:
    """`root/path` without the detour: eval/sets/x/../../../../shared is ../shared."""
    return Path(os.path.normpath(root / path))


def _name(folder: Path) -> str:
    return folder.resolve().name


def from_squad(row: dict[str, Any]) -> dict[str, Any]:
    """A row of ../shared/data/squad-dev/questions.jsonl in our format: answers deduplicated in
    order, doc_id the article's file name, evidence the gold paragraph."""
    return {
        "id": row["id"],
        "question": row["question"],
        "answers": list(dict.fromkeys(row["answers"])),
        "doc_id": Path(row["doc_path"]).name,
        "evidence": row["passage"],
        "unanswerable": False,
        "history": [],
    }


def from_squad2(row: dict[str, Any], paragraphs: dict[tuple[str, int], str]) -> dict[str, Any]:
    """A row of ../shared/data/squad2-train/questions.jsonl in our format: doc_id the article's
    file in ../shared/data/squad-dev/docs, evidence its paragraph; unanswerable ones keep none."""
    unanswerable = bool(row["unanswerable"])
    return {
        "id": row["id"],
        "question": row["question"],
        "answers": [] if unanswerable else list(dict.fromkeys(row["answers"])),
        "doc_id": None if unanswerable else f"{row['article']}.txt",
        "evidence": None if unanswerable else paragraphs[(row["article"], row["para"])],
        "unanswerable": unanswerable,
        "history": [],
        "note": f"SQuAD 2.0 dev, {row['article']} paragraph {row['para']}",
    }


def from_realtimeqa(row: dict[str, Any], docs: Path) -> dict[str, Any]:
    """A row of a news-dev set (../shared/tools/news-dev/build.py) in our format: a question
    whose answer no retrieved article holds verbatim counts as unanswerable from the corpus;
    the evidence is the text around the answer's first occurrence in the first article holding
    it (`docs`: the set's articles), and the answer as written there (matching ignores case)."""
    in_corpus = bool(row["answer_in_corpus"])
    out = {
        "id": row["id"],
        "question": row["question"],
        "answers": [],
        "doc_id": None,
        "evidence": None,
        "unanswerable": not in_corpus,
        "history": [],
        "note": f"RealTime QA week {row['week']}",
    }
    if in_corpus:
        doc_id = f"{row['doc_ids'][0]}.txt"
        text = (docs / doc_id).read_text(encoding="utf-8")
        answer = row["answers"][0]
        at = text.lower().find(answer.lower())
        if at < 0:
            raise InvalidInput(f"{docs / doc_id} does not hold the answer {answer!r}")
        written = text[at : at + len(answer)]
        out |= {
            "answers": [written],
            "doc_id": doc_id,
            "evidence": text[max(0, at - 150) : at + len(answer) + 150],
        }
    return out


Row = TypeVar("Row", bound=BaseModel)


def load_questions(set_dir: Path | EvalSet) -> list[EvalQuestion]:
    """The questions of an eval set, in the order of its question files."""
    eval_set = set_dir if isinstance(set_dir, EvalSet) else load_set(set_dir)
    if eval_set.is_conversation:
        raise InvalidInput(f"eval set {eval_set.name} holds conversation turns: see load_turns")
    return _validated(eval_set, EvalQuestion, "question")


def load_turns(set_dir: Path | EvalSet) -> list[ConversationTurn]:
    """The turns of a conversation set, in file order."""
    eval_set = set_dir if isinstance(set_dir, EvalSet) else load_set(set_dir)
    if not eval_set.is_conversation:
        raise InvalidInput(f"eval set {eval_set.name} holds questions, not conversation turns")
    return _validated(eval_set, ConversationTurn, "conversation turn")


def _validated(eval_set: EvalSet, model: type[Row], what: str) -> list[Row]:
    """The set's rows as `model`s; one clear error naming the first row that is not one."""
    rows = []
    for where, row in eval_set.rows():
        try:
            rows.append(model.model_validate(row))
        except ValueError as exc:
            raise InvalidInput(f"{where}: not a valid {what}: {exc}") from exc
    if not rows:
        raise InvalidInput(f"eval set {eval_set.name} holds no {what}s")
    return rows


def default_index_dir(set_dir: Path) -> Path:
    return Path("index") / f"eval-{_name(Path(set_dir))}"


def chunking_params() -> ChunkingParams:
    """The chunking the CLI's `qa index` uses (from the settings)."""
    from qa.config import get_settings
    from qa.sources.chunking import ChunkingParams

    settings = get_settings()
    return ChunkingParams(settings.sources.chunk_tokens, settings.sources.chunk_overlap_sentences)


def build_index(
    eval_set: EvalSet, index_dir: Path, embedder: Embedder | None = None, progress: bool = False
) -> IndexReport:
    """Index the set's corpus into `index_dir`, incrementally; refuse when a file fails."""
    from qa.config import get_settings
    from qa.encoders.embedding import default_embedder
    from qa.indexing import index_paths

    eval_set.require(eval_set.corpus)
    report = index_paths(
        eval_set.corpus,
        index_dir,
        embedder or default_embedder(),
        chunking_params(),
        batch_size=get_settings().encoders.embed_batch_size,
        progress=progress,
    )
    if not report.ok:
        raise InvalidInput(f"could not index the corpus of {eval_set.name}: {report.failed}")
    return report
