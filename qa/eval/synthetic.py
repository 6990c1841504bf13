"""Synthetic chunk vectors for benchmarks past what can be embedded here.

A Gaussian mixture fitted to real chunk vectors: k-means centroids as the components' means (with
the real clusters' shares as weights) and one shared full covariance of the real vectors'
residuals around their centroid; a draw is normalized to unit length, as the encoder's vectors
are. Draws keep the real vectors' topic structure and spread (checked by `neighbour_stats`), and
unlike jittered copies of real vectors they hold no near-duplicates whose exact order is noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_COMPONENTS = 64  # nearest-neighbour cosines of draws closest to squad-dev's at 64-128
POINTS_PER_COMPONENT = 16  # fewer real vectors than 16 per component: fewer components


@dataclass(frozen=True)
class VectorMixture:
    """A Gaussian mixture over unit vectors; `labels[i]` is real vector i's component."""

    means: np.ndarray  # (K, dim)
    chol: np.ndarray  # (dim, dim): Cholesky factor of the shared covariance
    labels: np.ndarray  # (n_real,)

    @property
    def n_components(self) -> int:
        return len(self.means)

    def describe(self) -> str:
        return (
            f"a Gaussian mixture fitted to the {len(self.labels)} real chunk vectors "
            f"({self.n_components} components: k-means centroids, weighted by their clusters' "
            "shares, one shared full covariance of the residuals), each draw normalized"
        )


def fit_mixture(vectors: np.ndarray, seed: int = 0) -> VectorMixture:
    """Fit the mixture to real (unit) vectors."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    k = max(1, min(MAX_COMPONENTS, n // POINTS_PER_COMPONENT))
    kmeans = faiss.Kmeans(dim, k, niter=25, seed=seed, min_points_per_centroid=1)
    kmeans.train(x)
    _, nearest = kmeans.index.search(x, 1)
    labels = nearest[:, 0].astype(np.int64)
    means = kmeans.centroids.astype(np.float64)
    residuals = x - means[labels]
    cov = np.cov(residuals.T) if n > 1 else np.zeros((dim, dim))
    chol = np.linalg.cholesky(cov + 1e-6 * np.eye(dim))
    return VectorMixture(means, chol, labels)


def draw(mixture: VectorMixture, components: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One unit vector per entry of `components`, drawn from that component."""
    noise = rng.standard_normal((len(components), mixture.means.shape[1])) @ mixture.chol.T
    out = mixture.means[components] + noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def draw_any(mixture: VectorMixture, n: int, rng: np.random.Generator) -> np.ndarray:
    """n vectors from the whole mixture (components in the real clusters' shares)."""
    return draw(mixture, mixture.labels[rng.integers(0, len(mixture.labels), n)], rng)


def neighbour_stats(vectors: np.ndarray, sample: int = 2000) -> dict[str, float]:
    """Median cosine to the nearest and to the 10th nearest other vector (up to `sample`
    vectors among themselves): how tight the neighbourhoods an index must tell apart are."""
    x = np.asarray(vectors[:sample], dtype=np.float32)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top = -np.sort(-sims, axis=1)
    k10 = min(9, max(0, len(x) - 2))
    return {
        "nn1_cos_p50": float(np.median(top[:, 0])),
        "nn10_cos_p50": float(np.median(top[:, k10])),
    }
