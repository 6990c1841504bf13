"""`qa serve`, `qa mcp` and `qa up`: the HTTP service, the MCP server, and both with the UI."""

from __future__ import annotations

from contextlib import closing
from typing import Annotated

import typer

from qa.cli.exits import fail
from qa.cli.options import (
    CollectionOpt,
    IndexOpt,
    MilvusUriOpt,
    StoreOpt,
    index_folder,
    open_engine,
    use_store,
)
from qa.config import get_settings
from qa.errors import QAError


def serve(
    index: IndexOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    store: StoreOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Run the HTTP service (OpenAPI docs at /docs); the models and index load once, in the
    background: /health says `"ready": true` when they are in."""
    import uvicorn

    from qa.serving.app import create_app

    use_store(store, milvus_uri, collection)
    settings = get_settings()
    if index is not None:
        settings = settings.replace(index_dir=index)
    if not settings.serving.api_key and host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"warning: listening on {host} without QA_API_KEY; anyone who can reach it "
            "can read, add and delete documents",
            fg=typer.colors.YELLOW,
            err=True,
        )
    uvicorn.run(create_app(settings, background=True), host=host, port=port)


def mcp(
    index: IndexOpt = None,
    store: StoreOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """Serve qa's tools over MCP on stdin/stdout, for a desktop assistant to start (the HTTP
    service has the same tools at /mcp)."""
    import threading

    from qa.serving import mcp as mcp_server

    use_store(store, milvus_uri, collection)
    with closing(open_engine(index)) as engine:
        # The model loads beside the handshake, so the first question need not wait for it.
        threading.Thread(target=engine.embedder.embed_query, args=("warm up",), daemon=True).start()
        mcp_server.run_stdio(engine)


def up(
    index: IndexOpt = None,
    api_port: Annotated[int, typer.Option("--api-port", help="Port of the HTTP service.")] = 8000,
    ui_port: Annotated[int, typer.Option("--ui-port", help="Port of the chat UI.")] = 8501,
) -> None:
    """Start the HTTP service and the chat UI together (on 127.0.0.1); Ctrl-C stops both."""
    from qa.serving import launcher

    try:
        code = launcher.up(index_folder(index), api_port, ui_port, say=typer.echo)
    except QAError as exc:
        raise fail(exc) from exc
    raise typer.Exit(code)
