"""Table 3's re-built baselines (xmr_lib.chapters.ch10.baselines): multi-view CCA, three-view CCA, SM."""

import numpy as np
import pytest

from xmr_lib.chapters.ch10 import baselines as bl
from xmr_lib.chapters.ch10 import common_space as cs


def _correlated(n=4000, rho=0.6, seed=0):
    """x, y (n, 1) with corr(x, y) ≈ rho, and a second pair of independent noise columns."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    x = z
    y = rho * z + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return np.c_[x, rng.normal(size=n)], np.c_[y, rng.normal(size=n)]


def test_two_view_eigenvalue_is_one_plus_the_canonical_correlation():
    x, y = _correlated()
    _, lam, _ = bl.multiview_cca([x, y], 1, reg=0.0)
    # the first canonical correlation is (up to the small noise columns) corr(x[:, 0], y[:, 0]), computed by hand
    xc, yc = x[:, 0] - x[:, 0].mean(), y[:, 0] - y[:, 0].mean()
    rho = (xc @ yc) / np.sqrt((xc @ xc) * (yc @ yc))
    assert lam[0] == pytest.approx(1 + rho, abs=0.02)
    assert 0.55 < rho < 0.65


def test_two_view_matches_the_classic_cca_correlations():
    """1 + ρ_k against the singular values of Σxx^{-1/2} Σxy Σyy^{-1/2} (Hotelling's CCA, by hand)."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 2))
    x = z @ rng.normal(size=(2, 3)) + 0.5 * rng.normal(size=(500, 3))
    y = z @ rng.normal(size=(2, 4)) + 0.5 * rng.normal(size=(500, 4))
    _, lam, _ = bl.multiview_cca([x, y], 3, reg=0.0)
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc, yc.T @ yc, xc.T @ yc

    def inv_sqrt(a):
        w, v = np.linalg.eigh(a)
        return v @ np.diag(w**-0.5) @ v.T

    rho = np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)
    np.testing.assert_allclose(lam, 1 + rho[:3], atol=1e-8)


def test_projections_are_d_orthonormal_and_bad_input_is_named():
    rng = np.random.default_rng(2)
    views = [rng.normal(size=(50, d)) for d in (3, 4, 2)]
    w, lam, mu = bl.multiview_cca(views, 4, reg=1e-3)
    assert [a.shape for a in w] == [(3, 4), (4, 4), (2, 4)] and lam.shape == (4,)
    assert np.all(np.diff(lam) <= 1e-12) and lam.max() <= 3 + 1e-9
    # Wᵀ D W = I with D the block diagonal of within-view covariances (reg = 0 here)
    w0, _, _ = bl.multiview_cca(views, 4, reg=0.0)
    wtdw = sum(a.T @ np.cov(v, rowvar=False) @ a for a, v in zip(w0, views))
    np.testing.assert_allclose(wtdw, np.eye(4), atol=1e-8)
    with pytest.raises(ValueError, match="views\\[1\\]"):
        bl.multiview_cca([views[0], views[1][:10]], 2)
    with pytest.raises(ValueError, match="n_components"):
        bl.multiview_cca(views, 10)
    with pytest.raises(ValueError, match="at least 2 views"):
        bl.multiview_cca(views[:1], 1)


def _clustered(seed=0, n=300, c=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    xi = rng.normal(size=(c, 6))[y] * 2 + rng.normal(size=(n, 6))
    xt = rng.normal(size=(c, 5))[y] * 2 + rng.normal(size=(n, 5))
    return xi, xt, y


def test_sm_posteriors_sum_to_one_and_retrieve():
    xi, xt, y = _clustered()
    sm = bl.SemanticMatching().fit(xi[:200], xt[:200], y[:200])
    pi, pt = sm.transform(xi[200:], xt[200:])
    assert pi.shape == pt.shape == (100, 4)
    np.testing.assert_allclose(pi.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(pt.sum(1), 1, atol=1e-5)
    assert (pi >= 0).all() and (pt >= 0).all()
    assert cs.cross_modal_map(pi, pt, y[200:])["average"] > 0.9
    with pytest.raises(ValueError, match="multi-label"):
        bl.SemanticMatching().fit(xi, xt, np.eye(4)[y])


def test_sm_keeps_a_column_for_a_class_missing_from_training():
    xi, xt, y = _clustered()
    y = np.where(y == 1, 2, y)  # class 1 absent, class 3 present: 4 columns, the second always 0
    sm = bl.SemanticMatching().fit(xi, xt, y)
    pi, _ = sm.transform(xi[:5], xt[:5])
    assert pi.shape == (5, 4) and np.all(pi[:, 1] == 0)


def test_three_view_cca_uses_the_labels_cca_does_not():
    """Classes separated in a low-variance direction, a strongly correlated but class-free direction elsewhere:
    CCA follows the correlation, the label view pulls three-view CCA to the classes."""
    rng = np.random.default_rng(3)
    n, c = 600, 3
    y = rng.integers(0, c, n)
    shared = rng.normal(size=n)  # correlated across modalities, unrelated to the class
    cls = np.array([-1.0, 0.0, 1.0])[y]
    xi = np.c_[shared + 0.1 * rng.normal(size=n), cls + 0.6 * rng.normal(size=n), rng.normal(size=n)]
    xt = np.c_[shared + 0.1 * rng.normal(size=n), cls + 0.6 * rng.normal(size=n)]
    tv = bl.ThreeViewCCA(1).fit(xi[:400], xt[:400], y[:400])
    cca = cs.CCABaseline(1, None).fit(xi[:400], xt[:400])
    m_tv = cs.cross_modal_map(*tv.transform(xi[400:], xt[400:]), y[400:])["average"]
    m_cca = cs.cross_modal_map(*cca.transform(xi[400:], xt[400:]), y[400:])["average"]
    assert m_tv > m_cca + 0.1


def test_three_view_cca_multilabel_and_unit_norm():
    xi, xt, y = _clustered()
    multi = np.eye(4)[y]
    multi[::3, 0] = 1
    tv = bl.ThreeViewCCA(3).fit(xi, xt, multi)
    zi, zt = tv.transform(xi[:7], xt[:9])
    assert zi.shape == (7, 3) and zt.shape == (9, 3)
    np.testing.assert_allclose(np.linalg.norm(zi, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="fit"):
        bl.ThreeViewCCA(3).transform(xi, xt)
    with pytest.raises(ValueError, match="labels"):
        bl.ThreeViewCCA(3).fit(xi, xt, y[:10])
