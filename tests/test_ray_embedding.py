"""Embedding with Ray Data: a real local Ray cluster (started once, it is slow) gives the local
path's vectors; without --ray nothing imports Ray."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from qa.encoders.ray import RayEmbedder
from qa.indexing import index_paths
from qa.store.folder import FolderStore
from tests.conftest import ROOT


def test_ray_actors_embed_what_the_local_path_embeds(tmp_path, embedder):
    ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'qa[ray]'")

    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(4):
        sentences = (f"Report {n}.{j}: the bridge carried {j * 7} trains." for j in range(30))
        (docs / f"r{n}.txt").write_text(" ".join(sentences))
    local, distributed = FolderStore(tmp_path / "local"), FolderStore(tmp_path / "ray")
    try:
        ray_embedder = RayEmbedder(embedder, actors=2, num_cpus=2)
        by_ray = index_paths([docs], distributed, ray_embedder, batch_size=4)
    finally:
        ray.shutdown()
    by_hand = index_paths([docs], local, embedder, batch_size=4)
    assert by_ray.embedded_chunks == by_hand.embedded_chunks > 4
    a, b = local.open(), distributed.open()
    assert a.chunks(list(range(a.n_chunks))) == b.chunks(list(range(b.n_chunks)))
    va, vb = a.all_vectors(), b.all_vectors()
    assert np.allclose((va * vb).sum(axis=1), 1.0, atol=1e-5)  # cosine 1 within float error


def test_without_ray_nothing_imports_it(tmp_path):
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from qa.cli import app\n"
        "import qa.serving.app, qa.engine, qa.indexing, qa.store.milvus\n"
        "from tests.conftest import FakeEmbedder\n"
        "qa.encoders.embedding.default_embedder = FakeEmbedder  # the model is not the point here\n"
        f"(open({str(tmp_path / 'a.txt')!r}, 'w')).write('One sentence about apples.')\n"
        f"r = CliRunner().invoke(app, ['index', {str(tmp_path / 'a.txt')!r}, "
        f"'--index', {str(tmp_path / 'ix')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
