"""PCA-whitening and learned (supervised) whitening on hand-computed data."""

import numpy as np
import pytest
import torch

from xmr_lib.retrieval.whitening import Whitening, apply_whitening, learn_pca_whitening, learn_supervised_whitening

# four points, mean 0: variance 0.5 along x, 2 along y
X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])


def test_pca_whitening_hand_computed():
    w = learn_pca_whitening(X)
    assert np.allclose(w.mean, 0)
    assert np.allclose(w.eigenvalues, [2.0, 0.5])
    # P = Λ^{-1/2} Vᵀ: first row is the y axis scaled by 1/√2, second the x axis scaled by √2 (signs free)
    assert np.allclose(np.abs(w.projection), [[0.0, 2**-0.5], [2**0.5, 0.0]])
    z = w(X, normalize=False)
    assert np.allclose(z.T @ z / len(z), np.eye(2), atol=1e-6)  # whitened: identity covariance
    assert z.dtype == np.float32


def test_pca_whitening_dimension_reduction_power_and_types():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([5, 4, 3, 2, 1, 0.5])
    w = learn_pca_whitening(x, dim=3)
    assert w.projection.shape == (3, 6) and w.output_dim == 3
    y = w(x)
    assert y.shape == (200, 3) and np.allclose(np.linalg.norm(y, axis=1), 1, atol=1e-5)
    # dim at apply time keeps the leading rows
    assert np.allclose(w(x, dim=2), apply_whitening(x, w.mean, w.projection[:2]), atol=1e-6)
    # power 0: plain PCA, an orthonormal projection
    r = learn_pca_whitening(x, power=0.0)
    assert np.allclose(r.projection @ r.projection.T, np.eye(6), atol=1e-8)
    # partial whitening (0.25) shrinks the spread of the per-axis variances but does not equalise them
    var = lambda p: np.var(learn_pca_whitening(x, power=p)(x, normalize=False), axis=0)
    assert np.ptp(var(0.5)) < 1e-6 < np.ptp(var(0.25)) < np.ptp(var(0.0))
    # torch in → torch out (same dtype), and the same numbers
    t = torch.as_tensor(x, dtype=torch.float32)
    yt = w(t)
    assert isinstance(yt, torch.Tensor) and yt.dtype == torch.float32
    assert np.allclose(yt.numpy(), y, atol=1e-5)


def test_to_linear_matches_apply():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4))
    w = learn_pca_whitening(x, dim=3)
    lin = w.to_linear()
    t = torch.as_tensor(x, dtype=torch.float32)
    assert lin.weight.shape == (3, 4)
    assert torch.allclose(lin(t), torch.as_tensor(w(x, normalize=False)), atol=1e-4)


def test_rank_deficient_learning_set_stays_finite():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 20))  # N < D: 16 directions without variance
    w = learn_pca_whitening(x)
    assert np.isfinite(w.projection).all()
    assert np.isfinite(w(rng.normal(size=(3, 20)))).all()


def test_supervised_whitening_properties():
    rng = np.random.default_rng(3)
    n_groups, per = 40, 4
    centres = rng.normal(size=(n_groups, 5)) * 3
    noise_scale = np.array([0.1, 1.0, 0.2, 2.0, 0.5])  # anisotropic intra-group noise
    x = np.repeat(centres, per, axis=0) + rng.normal(size=(n_groups * per, 5)) * noise_scale
    g = np.repeat(np.arange(n_groups), per)
    qi = np.nonzero(np.arange(len(x)) % per == 0)[0]
    pi = qi + 1
    w = learn_supervised_whitening(x, qi, pi)
    assert w.kind == "supervised" and w.projection.shape == (5, 5)
    P = w.projection
    df = x[qi] - x[pi]
    cs = df.T @ df / len(df)
    assert np.allclose(P @ cs @ P.T, np.eye(5), atol=1e-8)  # matching-pair differences are whitened
    z = (x - w.mean) @ P.T
    d = z.T @ z / len(z)
    assert np.allclose(d, np.diag(np.diag(d)), atol=1e-8)  # rotated to principal axes
    assert np.all(np.diff(np.diag(d)) <= 1e-9)  # in decreasing order
    assert np.allclose(w.mean, x[qi].mean(0))

    # it makes matching pairs closer relative to non-matching ones than raw descriptors do
    def ratio(v):
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        same = np.linalg.norm(v[qi] - v[pi], axis=1).mean()
        other = np.linalg.norm(v[qi] - v[np.roll(pi, per)], axis=1).mean()
        return same / other

    assert ratio(w(x)) < ratio(x)
    assert set(np.unique(g[qi] == g[pi])) == {True}


def test_validation_errors():
    with pytest.raises(ValueError, match=r"x: expected a 2-D array \(n_vectors, dim\), got shape \(4,\)"):
        learn_pca_whitening(np.ones(4))
    with pytest.raises(ValueError, match="at least 2 vectors"):
        learn_pca_whitening(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"dim: expected an int in \[1, 2\], got 3"):
        learn_pca_whitening(X, dim=3)
    with pytest.raises(ValueError, match="power"):
        learn_pca_whitening(X, power=2)
    with pytest.raises(ValueError, match="positive_idx: indices must be in"):
        learn_supervised_whitening(X, [0], [9])
    with pytest.raises(ValueError, match="same length"):
        learn_supervised_whitening(X, [0, 1], [2])
    w = learn_pca_whitening(X)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2\), got \(3, 5\)"):
        w(np.ones((3, 5)))
    assert isinstance(w, Whitening)


def test_gram_path_equals_covariance_path():
    # N < D with dim <= N - 1 takes the Gram-matrix route; it must agree with the covariance route
    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 50)) * np.linspace(3, 0.1, 50)
    a = learn_pca_whitening(x, dim=20)  # Gram route
    b = learn_pca_whitening(np.vstack([x, x]), dim=20)  # 60 rows > 50 dims: covariance route, same covariance
    assert np.allclose(a.eigenvalues, b.eigenvalues, rtol=1e-8)
    assert np.allclose(
        np.abs(np.sum(a.projection * b.projection, axis=1)),
        np.linalg.norm(a.projection, axis=1) * np.linalg.norm(b.projection, axis=1),
        rtol=1e-6,
    )


# ---------------------------------------------------------------------------------------------------------------
# degenerate learning sets (before: all-equal vectors gave a whitening mapping everything to 0, uninformative
# pairs raised torch's LinAlgError, eps = 0 or NaN gave inf / NaN projections)


@pytest.mark.parametrize("x", [np.ones((5, 4)), np.tile(np.arange(4.0), (2, 1)), np.zeros((3, 8))])
def test_pca_whitening_without_variance_raises(x):
    with pytest.raises(ValueError, match=r"^x: the \d+ learning vectors have no variance"):
        learn_pca_whitening(x)


def test_pca_whitening_rank_deficient_keeps_the_floor_and_dim_keeps_the_non_null_directions():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 10))
    x = rng.normal(size=(100, 3)) @ basis  # rank 3 in 10 dimensions
    w = learn_pca_whitening(x)
    assert np.allclose(w.eigenvalues[3:], 1e-10 * w.eigenvalues[0])  # documented floor, finite gain
    w3 = learn_pca_whitening(x, dim=3)
    y = w3(rng.normal(size=(5, 3)) @ basis)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)  # never zero vectors


def test_whitening_eps_and_overflow():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6))
    assert np.array_equal(learn_pca_whitening(x, eps=0).projection, learn_pca_whitening(x, eps=0.0).projection)
    for eps in (-1.0, float("nan"), float("inf"), "a"):
        with pytest.raises(ValueError, match=r"^eps: expected a finite number >= 0|^eps: expected a number >= 0"):
            learn_pca_whitening(x, eps=eps)
    with pytest.raises(ValueError, match=r"^eps: 0.0 leaves \d+ eigenvalue\(s\) at or below 0"):
        learn_pca_whitening(x[:3], eps=0)  # rank 2 in 6 dims: infinite gains
    with pytest.raises(ValueError, match=r"^eps: 0.0 leaves"):
        learn_supervised_whitening(x, [0, 1], [2, 3], eps=0)
    with pytest.raises(ValueError, match=r"^x: values too large"), np.errstate(over="ignore"):
        learn_pca_whitening(x * 1e160)


@pytest.mark.parametrize(
    "make",
    [
        lambda x: (x, [0, 1, 2], [0, 1, 2]),  # each vector with itself
        lambda x: (np.vstack([x, x]), np.arange(20), np.arange(20, 40)),
    ],
)  # duplicates
def test_supervised_whitening_on_uninformative_pairs_raises(make):
    x = np.random.default_rng(2).normal(size=(20, 10))
    a, q, p = make(x)
    with pytest.raises(ValueError, match=r"^query_idx, positive_idx: the \d+ pairs carry no information"):
        learn_supervised_whitening(a, q, p)
