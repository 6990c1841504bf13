"""All settings in one place: environment variables with the QA_ prefix, or a .env file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qa.errors import InvalidInput

# Limits and defaults that the schema, the engine and the CLI share: written once, here.
MAX_TOP_K = 50  # passages one request may ask for
MAX_QUESTION_CHARS = 2000  # default longest question (QA_MAX_QUESTION_CHARS)
QUESTION_CHARS_CEILING = 100_000  # the most QA_MAX_QUESTION_CHARS may allow
LLM_MAX_PROMPT_TOKENS = 3000  # default prompt budget (QA_LLM_MAX_PROMPT_TOKENS)

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


class Settings(BaseSettings):
    """Settings shared by the CLI, the HTTP service and the UI."""

    model_config = SettingsConfigDict(env_prefix="QA_", env_file=".env", extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_removed_settings(cls, data: object) -> object:
        """Stop on a removed setting (`REMOVED_SETTINGS`, QA_READER=full) set in the
        environment, the .env file (whose unknown QA_ names reach here, lower-cased and without
        the prefix) or the arguments, rather than ignore it."""
        given = {k.upper() for k in os.environ if k.upper() in REMOVED_SETTINGS}
        if isinstance(data, dict):
            given |= {f"QA_{k}".upper() for k in data if f"QA_{k}".upper() in REMOVED_SETTINGS}
            reader = str(data.get("reader")).strip().lower()
            if reader in REMOVED_READER_VALUES:
                value = "full" if reader == "full" else f"{reader} (full)"
                raise RemovedSetting(
                    f"bad setting: QA_READER={value} was removed (the reader deciding alone "
                    "lost, see docs/reader.md); use short (the default) or off"
                )
        if given:
            name = min(given)
            raise RemovedSetting(
                f"bad setting: {name} was removed ({REMOVED_SETTINGS[name]}, see docs/reader.md); "
                "unset it"
            )
        return data

    # Index
    index_dir: Path = Field(Path("index/default"), description="Folder of the index to use.")
    chunk_tokens: int = Field(
        200, ge=32, le=256, description="Most word pieces per chunk (model limit 256)."
    )
    chunk_overlap_sentences: int = Field(
        1, ge=0, le=5, description="Sentences repeated between neighbouring chunks."
    )
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
    max_file_mb: float = Field(50.0, gt=0, description="Larger files are refused when indexing.")
    vector_index: Literal["flat", "hnsw", "ivf"] = Field(
        "flat",
        description="Dense index of an index folder: flat = exact search; hnsw = FAISS HNSW "
        "graph, ivf = FAISS IVF-Flat inverted lists (approximate, faster on large indexes); "
        "applies from the next write.",
    )

    # Store: the index folder (default) or Milvus
    store: Literal["folder", "milvus"] = Field(
        "folder", description="Where the index lives: folder = QA_INDEX_DIR, milvus = Milvus."
    )
    milvus_uri: str = Field(
        "index/milvus.db",
        description="Milvus to use with QA_STORE=milvus: a local file (Milvus Lite, embedded) or "
        "http://host:19530 (a Milvus server).",
    )
    milvus_collection: str = Field(
        "qa", description="Name prefix of the Milvus collections holding the index."
    )

    # Retrieval and answers
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="Passages returned per question.")
    max_question_chars: int = Field(
        MAX_QUESTION_CHARS,
        ge=10,
        le=QUESTION_CHARS_CEILING,
        description="Longest question accepted.",
    )
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

    @field_validator("reader", mode="before")
    @classmethod
    def _reader_bools(cls, value: object) -> object:
        """QA_READER=false, as before `short` existed: no reader (true meant the removed `full`)."""
        if value is False or (isinstance(value, str) and value.strip().lower() in _OFF_WORDS):
            return "off"
        return value

    reader_model: Path | None = Field(
        None,
        description="A reader model folder to use instead of the shipped models/reader (what "
        "`qa train reader --out DIR` writes), e.g. to evaluate a retrained reader.",
    )

    # Generated answers (optional): any OpenAI-compatible endpoint; unset = extractive only
    llm_url: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1; "
        "unset = extractive answers only.",
    )
    llm_model: str = Field("default", description="Model name sent to the LLM endpoint.")
    llm_api_key: str | None = Field(None, description="Bearer key for the LLM endpoint, if any.")
    llm_timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for one generated answer, in seconds, in total."
    )
    llm_max_prompt_tokens: int = Field(
        LLM_MAX_PROMPT_TOKENS,
        ge=256,
        description="Prompt budget (cl100k_base tokens) for question and passages.",
    )
    llm_max_answer_tokens: int = Field(
        300, ge=16, description="Most tokens the model may generate per answer."
    )

    # HTTP service
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


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; a bad QA_ variable is an `InvalidInput` naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"QA_{str(e['loc'][0]).upper()}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"bad setting: {problems} (fix or unset it)") from None
