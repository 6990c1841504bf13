"""All settings in one place, grouped by pipeline stage: environment variables with the QA_
prefix, or a .env file.

Each stage has its own small settings model (`SourceSettings`, `EncoderSettings`,
`StoreSettings`, `RetrievalSettings`, `AnsweringSettings`, `LLMSettings`, `ServingSettings`),
each reading its own QA_ variables; `Settings` holds one of each as a named group
(`settings.retrieval.top_k`, `settings.llm.url`). `Settings(top_k=3)` takes any setting by its
variable's name without the prefix, lower-cased, and puts it in its group.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from types import EllipsisType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa.errors import InvalidInput

# Limits and defaults that the schema, the engine and the CLI share: written once, here.
MAX_TOP_K = 50  # passages one request may ask for
MAX_QUESTION_CHARS = 2000  # default longest question (QA_MAX_QUESTION_CHARS)
QUESTION_CHARS_CEILING = 100_000  # the most QA_MAX_QUESTION_CHARS may allow
LLM_MAX_PROMPT_TOKENS = 3000  # default prompt budget (QA_LLM_MAX_PROMPT_TOKENS)

ENV_FILE: Path | None = Path(".env")  # read by every group; None = no .env file (the tests)

ReaderUse = Literal["off", "short"]  # QA_READER
_OFF_WORDS = frozenset({"false", "0", "no"})

# Settings of reader experiments that lost and whose code is gone (docs/reader.md keeps their
# record): set, they stop `qa` rather than being silently ignored.
REMOVED_SETTINGS = {
    "QA_RERANK": "the re-ranking lost",
    "QA_READER_VETO_PROB": "the reader's veto lost",
    "QA_READER_MIN_PROB": "it served only QA_READER=full, which lost",
}
REMOVED_READER_VALUES = {"full", "true", "1", "yes"}  # QA_READER=full (true meant full)


class RemovedSetting(InvalidInput):
    """A setting whose experiment was removed is set (see `REMOVED_SETTINGS`)."""


def _refuse_removed(names: set[str]) -> None:
    """Stop on the first of `names` (QA_ variable names, upper case) that was removed."""
    given = names & REMOVED_SETTINGS.keys()
    if given:
        name = min(given)
        raise RemovedSetting(
            f"bad setting: {name} was removed ({REMOVED_SETTINGS[name]}, see docs/reader.md); "
            "unset it"
        )


class _Group(BaseSettings):
    """One stage's settings: its fields read QA_<NAME> (or the variable their alias names)."""

    model_config = SettingsConfigDict(
        env_prefix="QA_", env_file=".env", extra="ignore", populate_by_name=True
    )
    title: ClassVar[str]  # the group's heading in the README's settings table

    @model_validator(mode="before")
    @classmethod
    def _no_removed_settings(cls, data: object) -> object:
        """Stop on a removed setting (`REMOVED_SETTINGS`) set in the environment or the .env
        file (whose unknown names reach here, lower-cased and without the prefix), rather than
        ignore it."""
        given = {k.upper() for k in os.environ}
        if isinstance(data, dict):
            prefix = cls.model_config.get("env_prefix", "")
            given |= {f"{prefix}{k}".upper() for k in data}
        _refuse_removed(given)
        return data

    @classmethod
    def env_name(cls, field: str) -> str:
        """The variable a field (or an error's location) reads: QA_TOP_K for `top_k`."""
        info = cls.model_fields.get(field)
        if info is None:  # an alias already, as a validation error's location gives it
            return field.upper()
        if isinstance(info.validation_alias, str):
            return info.validation_alias.upper()
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


class SourceSettings(_Group):
    """Reading and chunking documents: `qa index`, uploads."""

    title = "Documents and chunks"

    chunk_tokens: int = Field(
        200, ge=32, le=256, description="Most word pieces per chunk (model limit 256)."
    )
    chunk_overlap_sentences: int = Field(
        1, ge=0, le=5, description="Sentences repeated between neighbouring chunks."
    )
    max_file_mb: float = Field(50.0, gt=0, description="Larger files are refused when indexing.")


class EncoderSettings(_Group):
    """The embedding model: its runtime, batches and exported files."""

    title = "Embedding model"

    embed_batch_size: int = Field(32, ge=1, le=1024, description="Chunks per encoder batch.")
    embed_backend: Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"] = Field(
        "auto",
        description="Runtime of the embedding model: torch (PyTorch fp32, the reference), "
        "torch-bf16, onnx, onnx-int8; auto = measured best on this CPU (docs/runtimes.md).",
    )
    cpu: Literal["host", "amx", "avx2"] = Field(
        "host",
        description="The CPU `auto` chooses runtimes for: host = this one (its /proc/cpuinfo); "
        "amx or avx2 = as on that kind (the tests run every kind's choice on any machine).",
    )
    model_cache_dir: Path = Field(
        Path("~/.cache/qa"),
        description="Where the ONNX files exported from the bundled model are kept.",
    )


class StoreSettings(_Group):
    """Where the index lives: an index folder (the default) or Milvus."""

    title = "Index store"

    index_dir: Path = Field(Path("index/default"), description="Folder of the index to use.")
    vector_index: Literal["flat", "hnsw", "ivf"] = Field(
        "flat",
        description="Dense index of an index folder: flat = exact search; hnsw = FAISS HNSW "
        "graph, ivf = FAISS IVF-Flat inverted lists (approximate, faster on large indexes); "
        "applies from the next write.",
    )
    kind: Literal["folder", "milvus"] = Field(
        "folder",
        validation_alias="QA_STORE",
        description="Where the index lives: folder = QA_INDEX_DIR, milvus = Milvus.",
    )
    milvus_uri: str = Field(
        "index/milvus.db",
        description="Milvus to use with QA_STORE=milvus: a local file (Milvus Lite, embedded) or "
        "http://host:19530 (a Milvus server).",
    )
    milvus_collection: str = Field(
        "qa", description="Name prefix of the Milvus collections holding the index."
    )


class RetrievalSettings(_Group):
    """Searching the index for a question's passages."""

    title = "Retrieval"

    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="Passages returned per question.")
    max_question_chars: int = Field(
        MAX_QUESTION_CHARS,
        ge=10,
        le=QUESTION_CHARS_CEILING,
        description="Longest question accepted.",
    )


class AnsweringSettings(_Group):
    """Extractive answers: when to abstain, and the reader model."""

    title = "Answers"

    min_coverage: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Abstain unless a sentence covers this share of the question's words; "
        "unset = 0.40, calibrated on the dev sets (higher abstains more; see `qa eval`).",
    )
    reader: ReaderUse = Field(
        "short",
        description="How the trained reader model (models/reader) is used: `short` = the rules "
        "choose the sentences and abstain, the reader gives the short answer and the answer's "
        "confidence; `off` = the rules alone (false).",
    )
    reader_model: Path | None = Field(
        None,
        description="A reader model folder to use instead of the shipped models/reader (what "
        "`qa train reader --out DIR` writes), e.g. to evaluate a retrained reader.",
    )

    @field_validator("reader", mode="before")
    @classmethod
    def _reader_bools(cls, value: object) -> object:
        """QA_READER=false, as before `short` existed: no reader; QA_READER=full (and true,
        which meant full) was removed: stop and say so."""
        if value is False or (isinstance(value, str) and value.strip().lower() in _OFF_WORDS):
            return "off"
        reader = str(value).strip().lower()
        if reader in REMOVED_READER_VALUES:
            shown = "full" if reader == "full" else f"{reader} (full)"
            raise RemovedSetting(
                f"bad setting: QA_READER={shown} was removed (the reader deciding alone "
                "lost, see docs/reader.md); use short (the default) or off"
            )
        return value


class LLMSettings(_Group):
    """Generated answers (optional): any OpenAI-compatible endpoint; no URL = extractive only."""

    model_config = SettingsConfigDict(env_prefix="QA_LLM_")
    title = "Generated answers (optional)"

    url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1; "
        "unset = extractive answers only.",
    )
    model: str = Field("default", description="Model name sent to the LLM endpoint.")
    api_key: str | None = Field(None, description="Bearer key for the LLM endpoint, if any.")
    timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for one generated answer, in seconds, in total."
    )
    max_prompt_tokens: int = Field(
        LLM_MAX_PROMPT_TOKENS,
        ge=256,
        description="Prompt budget (cl100k_base tokens) for question and passages.",
    )
    max_answer_tokens: int = Field(
        300, ge=16, description="Most tokens the model may generate per answer."
    )


class ServingSettings(_Group):
    """The HTTP service, and where the UI finds it."""

    title = "HTTP service and UI"

    api_key: str | None = Field(None, description="When set, every endpoint but /health needs it.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the service from a browser."
    )
    max_upload_mb: float = Field(20.0, gt=0, description="Largest upload accepted, per file.")
    query_batch_size: int = Field(
        32,
        ge=1,
        le=256,
        description="Most concurrent questions the service encodes in one call "
        "(micro-batching); 1 = each question alone.",
    )
    query_batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=100,
        description="How long the service gathers concurrent questions before encoding them, "
        "in milliseconds.",
    )
    api_url: str = Field("http://127.0.0.1:8000", description="Where the UI finds the service.")


class Settings(BaseModel):
    """Settings shared by the CLI, the HTTP service and the UI, one group per stage.

    `Settings(top_k=3, llm_url=...)` sets any of them by its QA_ variable's name without the
    prefix, lower-cased; the rest are read from the environment and `_env_file` (default: the
    module's `ENV_FILE`). An unknown name is a `TypeError`; a bad value, a `ValidationError`
    whose locations are the QA_ variables."""

    groups: ClassVar[dict[str, type[_Group]]] = {
        "sources": SourceSettings,
        "encoders": EncoderSettings,
        "store": StoreSettings,
        "retrieval": RetrievalSettings,
        "answering": AnsweringSettings,
        "llm": LLMSettings,
        "serving": ServingSettings,
    }

    sources: SourceSettings
    encoders: EncoderSettings
    store: StoreSettings
    retrieval: RetrievalSettings
    answering: AnsweringSettings
    llm: LLMSettings
    serving: ServingSettings

    def __init__(self, _env_file: Path | str | None | EllipsisType = ..., **given: Any) -> None:
        env_file = ENV_FILE if _env_file is ... else _env_file
        _refuse_removed({f"QA_{k}".upper() for k in given})
        values = _by_group(given)
        built: dict[str, _Group] = {}
        problems: list[Any] = []
        for group, cls in self.groups.items():
            try:
                built[group] = cls(_env_file=env_file, **values.get(group, {}))
            except ValidationError as exc:
                problems += [
                    {**e, "loc": (cls.env_name(str(e["loc"][0])), *e["loc"][1:])}
                    for e in exc.errors()
                ]
        if problems:
            raise ValidationError.from_exception_data("Settings", problems)
        super().__init__(**built)

    def replace(self, **changes: Any) -> Settings:
        """A copy with the settings named (as in `Settings(...)`) changed, unvalidated, like
        `model_copy(update=...)` on the flat settings."""
        return self.model_copy(
            update={
                group: getattr(self, group).model_copy(update=fields)
                for group, fields in _by_group(changes).items()
            }
        )


def setting_fields() -> Iterator[tuple[str, str, str, FieldInfo]]:
    """Every setting: (group, field, keyword name, field info), in the README's order; the
    keyword name is its QA_ variable's without the prefix, lower-cased (`llm_url`)."""
    for group, cls in Settings.groups.items():
        for field, info in cls.model_fields.items():
            yield group, field, cls.env_name(field).removeprefix("QA_").lower(), info


@lru_cache
def _routes() -> dict[str, tuple[str, str]]:
    """Each setting's keyword name (`llm_url`) to its group and field (`llm`, `url`)."""
    return {name: (group, field) for group, field, name, _ in setting_fields()}


def _by_group(named: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Settings given by keyword name (`llm_url=...`), sorted into their groups' fields
    (`{"llm": {"url": ...}}`); an unknown name is a `TypeError` listing the known ones."""
    routes = _routes()
    unknown = sorted(set(named) - routes.keys())
    if unknown:
        raise TypeError(
            f"unknown setting {unknown[0]!r}; settings are named as their QA_ variables, "
            f"without the prefix and lower-cased: {', '.join(sorted(routes))}"
        )
    grouped: dict[str, dict[str, Any]] = {}
    for name, value in named.items():
        group, field = routes[name]
        grouped.setdefault(group, {})[field] = value
    return grouped


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; a bad QA_ variable is an `InvalidInput` naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(e['loc'][0]).upper()}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"bad setting: {problems} (fix or unset it)") from None
