"""Notebook 00's descriptors: the library's PCA-whitening (``xmr_lib.retrieval.whitening``) replaces the notebook's
former SVD helper; it must be the same map up to the float rounding and the positive per-row scale L2 removes."""

import numpy as np
import pytest

from xmr_lib import data
from xmr_lib.course import runs
from xmr_lib.retrieval import metrics, whitening


def _svd_whitening(train, dim):
    """The helper notebook 00 used to define: centre, project on the top ``dim`` right singular vectors, divide by
    the standard deviation along each."""
    mu = train.mean(0)
    _, s, vt = np.linalg.svd(train - mu, full_matrices=False)
    proj = vt[:dim].T / (s[:dim] / np.sqrt(len(train) - 1))
    return lambda a: (a - mu) @ proj


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_library_whitening_is_the_notebooks_former_helper(profile):
    p = runs.resolve("00", profile)
    digits = data.load("digits", split="all", seed=0)
    perm = np.random.default_rng(0).permutation(len(digits))
    q_idx, db_idx = perm[: p.n_queries], perm[p.n_queries : p.n_queries + p.n_db]
    X = digits.images.reshape(len(digits), -1).astype(np.float64)
    ours = whitening.learn_pca_whitening(X[db_idx], p.pca_dim)(X)
    old = _svd_whitening(X[db_idx], p.pca_dim)(X)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    # eigenvectors are defined up to sign: compare per dimension with the sign aligned
    sign = np.sign((ours * old).sum(0))
    np.testing.assert_allclose(ours, old * sign, atol=1e-5)
    y = digits.labels
    rel = y[q_idx][:, None] == y[db_idx][None, :]
    m_ours = metrics.mean_average_precision(ours[q_idx] @ ours[db_idx].T, rel)
    m_old = metrics.mean_average_precision(old[q_idx] @ old[db_idx].T, rel)
    assert m_ours == pytest.approx(m_old, abs=1e-6)
