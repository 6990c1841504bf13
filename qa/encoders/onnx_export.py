"""The bundled encoder as an ONNX file (fp32 or int8), made once into a cache keyed by its hash.

`torch.onnx.export` (no optimum: it needs transformers < 5) traces the model with mean pooling
and normalization in the graph, so the file maps token ids straight to unit vectors. The file is
written beside its final name and renamed, under a file lock: two processes exporting at once
make it once, and a crash mid-way leaves nothing half-written under the final name. A missing or
corrupt file (its SHA-256 no longer matches the one recorded next to it) is made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

if TYPE_CHECKING:  # torch loads only when exporting
    import torch

# Bump when the exported graph changes, so caches made by an older qa are not reused.
EXPORT_VERSION = 1
KINDS = ("fp32", "int8")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The files that determine the exported graph; their hash names the cache entry.
SOURCE_FILES = ("model.safetensors", "config.json", "tokenizer.json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def source_key(model_dir: Path) -> str:
    """A short name for the source model: the hash of its weights, config and tokenizer
    (once per process: the bundled model does not change under a running process)."""
    digest = hashlib.sha256(f"export-{EXPORT_VERSION}".encode())
    for name in SOURCE_FILES:
        path = Path(model_dir) / name
        if path.exists():
            digest.update(name.encode() + file_sha256(path).encode())
    return digest.hexdigest()[:16]


def exported(model_dir: Path, kind: str, cache_dir: Path) -> Path:
    """The ONNX file of `kind` for the model in `model_dir`, exported now if missing or corrupt."""
    if kind not in KINDS:
        raise ValueError(f"unknown ONNX kind {kind!r}; one of {', '.join(KINDS)}")
    if kind == "fp32":
        make = lambda tmp: _export_fp32(Path(model_dir), tmp)  # noqa: E731
    else:
        make = lambda tmp: _quantize(exported(model_dir, "fp32", cache_dir), tmp)  # noqa: E731
    return cached(cache_dir, source_key(model_dir), f"model-{kind}.onnx", make)


def cached(cache_dir: Path, key: str, name: str, make: Callable[[Path], None]) -> Path:
    """The file `name` of cache entry `key`, made by `make(path)` now if missing or corrupt: once
    (under the entry's file lock) and atomically (see `_atomic`)."""
    folder = Path(cache_dir).expanduser() / key
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if _valid(target):
        return target
    with FileLock(str(folder / ".lock")):
        if not _valid(target):  # else another process made it while this one waited
            _atomic(target, make)
    return target


def _valid(path: Path) -> bool:
    """The file exists and still has the hash recorded when it was made."""
    meta = path.with_suffix(".json")
    try:
        recorded = json.loads(meta.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return path.exists() and file_sha256(path) == recorded


def _atomic(target: Path, make: Callable[[Path], None]) -> None:
    """Make `target` through a temporary file in its folder, then record its hash; both renamed."""
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        make(tmp)
        tmp.chmod(0o644)  # mkstemp makes it private; the cache is as readable as its folder
        meta = {"sha256": file_sha256(tmp), "export_version": EXPORT_VERSION}
        os.replace(tmp, target)
        _write_json(target.with_suffix(".json"), meta)
    finally:
        tmp.unlink(missing_ok=True)


def _export_fp32(model_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    sample = tokenizer(["a sample", "a longer sample sentence"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    with torch.no_grad():
        torch.onnx.export(
            _Pooled(model),
            tuple(sample[name] for name in INPUTS),
            str(out),
            input_names=list(INPUTS),
            output_names=["embedding"],
            dynamic_axes=axes | {"embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript
        )


def _quantize(source: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=True)


def _pooled_module() -> type[torch.nn.Module]:
    import torch

    class Pooled(torch.nn.Module):
        """The encoder plus sentence-transformers' mean pooling and L2 normalization."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    return Pooled


def _Pooled(encoder: torch.nn.Module) -> torch.nn.Module:  # noqa: N802 - a class made on demand, so torch loads only when exporting
    return _pooled_module()(encoder)


def agreement(model_dir: Path, kind: str, cache_dir: Path, measure: Callable[[], float]) -> float:
    """The exported file's agreement with the torch fp32 model, measured once per file (by
    `measure`, the embedder's mean cosine with the reference) and stored next to it."""
    target = exported(model_dir, kind, cache_dir)
    path = target.with_name(f"agreement-{kind}.json")
    sha = json.loads(target.with_suffix(".json").read_text())["sha256"]
    try:
        stored = json.loads(path.read_text())
        if stored["sha256"] == sha:
            return float(stored["mean_cosine"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = measure()
    _write_json(path, {"sha256": sha, "mean_cosine": value})
    return value


def _write_json(path: Path, data: dict) -> None:
    """Through a temporary file of this process's own, so concurrent writers never interleave."""
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.chmod(name, 0o644)
    os.replace(name, path)
