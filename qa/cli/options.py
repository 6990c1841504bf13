"""The options several commands share, each defined once, and what they set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qa.cli.exits import check_settings
from qa.config import get_settings

if TYPE_CHECKING:
    from qa.engine import Engine

ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode", help="extractive or llm (needs QA_LLM_URL) [default: llm when configured]"
    ),
]

IndexOpt = Annotated[
    Path | None,
    typer.Option("--index", help="Index folder [default: QA_INDEX_DIR or index/default]"),
]

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="folder or milvus [default: QA_STORE or folder]"),
]

MilvusUriOpt = Annotated[
    str | None,
    typer.Option(
        "--milvus-uri",
        help="Milvus Lite file or http://host:19530; implies --store milvus [default: "
        "QA_MILVUS_URI]",
    ),
]

CollectionOpt = Annotated[
    str | None,
    typer.Option("--collection", help="Milvus collection prefix [default: QA_MILVUS_COLLECTION]"),
]


def use_store(store: str | None, milvus_uri: str | None, collection: str | None) -> None:
    """--store, --milvus-uri and --collection are QA_STORE, QA_MILVUS_URI and
    QA_MILVUS_COLLECTION for this command and whatever it starts."""
    if milvus_uri is not None and store is None:
        store = "milvus"
    given = {"QA_STORE": store, "QA_MILVUS_URI": milvus_uri, "QA_MILVUS_COLLECTION": collection}
    for name, value in given.items():
        if value is not None:
            os.environ[name] = value
    get_settings.cache_clear()
    check_settings()


def index_folder(index: Path | None) -> Path:
    """--index, else QA_INDEX_DIR."""
    return index or get_settings().store.index_dir


def open_engine(index: Path | None) -> Engine:
    """The engine over --index (else QA_INDEX_DIR)."""
    from qa.engine import Engine

    return Engine(index_folder(index))
