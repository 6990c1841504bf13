"""`qa index`: index files and folders, or show what an index holds (--status)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qa.cli.exits import fail
from qa.cli.options import CollectionOpt, IndexOpt, MilvusUriOpt, StoreOpt, index_folder, use_store
from qa.config import get_settings
from qa.errors import QAError


def index(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders to index.")] = None,
    index: IndexOpt = None,
    status: Annotated[bool, typer.Option("--status", help="Show what the index holds.")] = False,
    prune: Annotated[
        bool, typer.Option(help="Remove documents that vanished from the given folders.")
    ] = True,
    store: StoreOpt = None,
    milvus_uri: MilvusUriOpt = None,
    collection: CollectionOpt = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="Embed with a pool of Ray actors (Ray Data).")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="Ray cluster to join (implies --ray) [default: a local one]"
        ),
    ] = None,
    ray_actors: Annotated[
        int, typer.Option("--ray-actors", min=1, help="Encoder actors, one CPU each.")
    ] = 2,
) -> None:
    """Index files and folders (.txt .md .html .pdf .docx); re-runs only embed what changed."""
    from qa import indexing
    from qa.encoders.embedding import default_embedder, is_terminal
    from qa.sources.chunking import ChunkingParams
    from qa.store.opening import open_store

    use_store(store, milvus_uri, collection)
    if status:
        _print_status(index_folder(index))
        return
    if not paths:
        raise fail("give at least one file or folder to index, or --status", 2)
    settings = get_settings()
    embedder = default_embedder()
    try:
        if ray or ray_address:
            from qa.encoders.ray import RayEmbedder

            embedder = RayEmbedder(embedder, ray_address, ray_actors)
        target = open_store(index_folder(index), settings)
        report = indexing.index_paths(
            paths,
            target,
            embedder,
            ChunkingParams(settings.sources.chunk_tokens, settings.sources.chunk_overlap_sentences),
            prune=prune,
            batch_size=settings.encoders.embed_batch_size,
            max_file_bytes=int(settings.sources.max_file_mb * 1e6),
            progress=is_terminal(),
        )
    except QAError as exc:
        raise fail(exc) from exc
    for path, reason in report.failed:
        typer.secho(f"failed: {path}: {reason}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{target.name} ({report.version}): {report.summary()}")
    if not report.ok:
        raise typer.Exit(1)


def _print_status(index_dir: Path) -> None:
    from qa.store import folder as store
    from qa.store.opening import open_store

    try:
        target = open_store(index_dir)
        snap = target.open()
    except QAError as exc:
        raise fail(exc) from exc
    m = snap.manifest
    typer.echo(f"index     {target.name} (version {snap.version}, format {m['format']})")
    typer.echo(f"model     {m['model']} ({m['dim']} dimensions)")
    typer.echo(f"backend   {_backends(m)}")
    typer.echo(f"chunking  {m['chunking']}")
    typer.echo(f"documents {len(m['documents'])}")
    typer.echo(f"chunks    {m['n_chunks']}")
    if isinstance(snap, store.Snapshot):
        typer.echo(f"size      {store.disk_size(snap.path) / 1e6:.1f} MB on disk")
    typer.echo(f"created   {m['created_at']}")
    for doc_id, meta in sorted(m["documents"].items()):
        date = meta.get("date") or "-"
        typer.echo(f"  {doc_id}  [{date}]  {meta['n_chunks']} chunks  {meta['title']}")
    snap.close()


def _backends(manifest: dict[str, Any]) -> str:
    """The index's runtime and its agreement with torch, and the one this process would use."""
    from qa.encoders.embedding import default_embedder, index_runtime

    built = index_runtime(manifest)
    return (
        f"built with {built['backend']} (mean cosine {float(built['agreement']):.4f} with torch); "
        f"QA_EMBED_BACKEND={get_settings().encoders.embed_backend}: {default_embedder().backend}"
    )
