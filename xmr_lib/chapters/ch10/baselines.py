"""The re-built baselines of Table 3 (ICME 2017 §4.2) beside CCA, from their own papers (our implementations):

- **SM** — semantic matching (Rasiwasia et al., ACM MM 2010, "A new approach to cross-modal multimedia retrieval",
  §4.2): one multinomial logistic regression per modality, trained on that modality's features and the class labels;
  an item's representation is the vector of class posteriors P(class | item) — a point of the probability simplex,
  the same c-dimensional "semantic space" for images and texts. Nothing ties the two regressions together: the
  common space comes from the shared label set only. Retrieval: Euclidean distance between posterior vectors (the
  ICME paper's §3.1 protocol for every method; Rasiwasia et al. also try KL divergence and normalised correlation).
  Single-label only (the ICME paper: SM "cannot fit the multi-label dataset").
- **T-V CCA** — three-view CCA (Gong, Ke, Isard, Lazebnik, IJCV 2014, §3): CCA generalised to three views — image,
  text and the **class labels** as a third "semantic" view — by the generalised eigenproblem of multi-view CCA
  ``S W = D W Λ`` (``S`` the covariance of the concatenated views, ``D`` its block diagonal, each block
  regularised); the embedding of a view is ``(x − μ) W_view`` with each dimension scaled by ``λ_k^p`` (p = 4, their
  §3.2) and retrieval by normalised correlation (cosine; here Euclidean distance of the L2-normalised embeddings,
  the same ranking). Labels may be (n,) ids or (n, c) multi-hot (VOC 2007).

:func:`multiview_cca` is the shared solver; with two views its eigenvalues are ``1 + ρ_k`` (ρ the canonical
correlations), which the tests check against correlations computed by hand.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from xmr_lib.core.checks import check_int, check_matrix

__all__ = ["multiview_cca", "SemanticMatching", "ThreeViewCCA", "one_hot_view"]


def _centre(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(0)
    return x - mu, mu


def multiview_cca(
    views: Sequence[Any], n_components: int, reg: float = 1e-3
) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Multi-view CCA (Gong et al., IJCV 2014, Eq. 3): the top ``n_components`` solutions of the generalised
    eigenproblem ``S w = λ D w`` with ``S`` the (Σd, Σd) covariance of the concatenated centred views and ``D`` its
    block diagonal (the within-view covariances, each plus ``reg × mean variance × I``).

    With two views ``λ_k = 1 + ρ_k`` (ρ_k the k-th canonical correlation); with m views λ lies in [0, m].

    Args:
        views: m ≥ 2 arrays (n, d_v) of paired rows. n_components: k ≤ Σ d_v. reg: ridge on each block, relative
            to the block's mean variance (≥ 0; > 0 when a view is rank-deficient).
    Returns:
        ``(projections, eigenvalues, means)``: per view a (d_v, k) matrix, the (k,) eigenvalues in decreasing
        order, per view its (d_v,) mean. The projections satisfy ``Wᵀ D W = I``.
    """
    from scipy.linalg import eigh

    if len(views) < 2:
        raise ValueError(f"views: expected at least 2 views, got {len(views)}")
    xs = [check_matrix(v, f"views[{i}]", dtype=np.float64) for i, v in enumerate(views)]
    n = len(xs[0])
    for i, x in enumerate(xs):
        if len(x) != n:
            raise ValueError(f"views[{i}]: expected {n} rows like views[0], got shape {x.shape}")
    if n < 2:
        raise ValueError(f"views: expected at least 2 rows, got {n}")
    if not (isinstance(reg, (int, float)) and reg >= 0):
        raise ValueError(f"reg: expected a number ≥ 0, got {reg!r}")
    dims = [x.shape[1] for x in xs]
    k = check_int(n_components, "n_components")
    if k > sum(dims):
        raise ValueError(f"n_components: expected at most {sum(dims)} (the views' total width), got {k}")
    centred = [_centre(x) for x in xs]
    z = np.concatenate([c for c, _ in centred], 1)
    s = z.T @ z / (n - 1)
    d = np.zeros_like(s)
    o = np.cumsum([0, *dims])
    for a, b in zip(o[:-1], o[1:]):
        blk = s[a:b, a:b]
        d[a:b, a:b] = blk + reg * max(float(np.trace(blk)) / (b - a), 1e-12) * np.eye(b - a)
    lam, w = eigh(s, d, subset_by_index=(sum(dims) - k, sum(dims) - 1))
    lam, w = lam[::-1], w[:, ::-1]
    return [w[a:b] for a, b in zip(o[:-1], o[1:])], lam, [mu for _, mu in centred]


def one_hot_view(labels: Any, n_classes: int | None = None) -> np.ndarray:
    """(n,) class ids → (n, c) one-hot; (n, c) multi-hot → itself as float (the label view of T-V CCA)."""
    y = np.asarray(labels)
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels: (n,) labels must be integer class ids, got dtype {y.dtype}")
        c = int(y.max()) + 1 if n_classes is None else check_int(n_classes, "n_classes", 2)
        if y.size and (y.min() < 0 or y.max() >= c):
            raise ValueError(f"labels: class ids must lie in [0, {c}), got [{y.min()}, {y.max()}]")
        return np.eye(c)[y]
    if y.ndim == 2:
        return (y > 0).astype(np.float64)
    raise ValueError(f"labels: expected (n,) class ids or (n, c) multi-hot, got shape {y.shape}")


class ThreeViewCCA:
    """Three-view CCA (Gong et al., IJCV 2014): image, text and label views, solved by :func:`multiview_cca`.

    Args:
        n_components: embedding dimension. power: p of the eigenvalue scaling ``λ^p`` (their §3.2: 4).
        reg: ridge on each view's covariance (relative). pca_dim: PCA per feature view before the fit (``None``:
            none), as our CCA baseline does for hundreds of collinear pixel dimensions.
    """

    def __init__(self, n_components: int = 10, power: float = 4.0, reg: float = 1e-3, pca_dim: int | None = None):
        self.n_components = check_int(n_components, "n_components")
        self.power, self.reg = float(power), reg
        self.pca_dim = None if pca_dim is None else check_int(pca_dim, "pca_dim")

    def _reduce(self, x: np.ndarray, i: int) -> np.ndarray:
        p = self.pcas[i]
        return x if p is None else (x - p[0]) @ p[1]

    def fit(self, image_features: Any, text_features: Any, labels: Any) -> "ThreeViewCCA":
        """(n, Di), (n, Dt) paired rows; labels (n,) ids or (n, c) multi-hot."""
        xi = check_matrix(image_features, "image_features", dtype=np.float64)
        xt = check_matrix(text_features, "text_features", dtype=np.float64)
        if len(xt) != len(xi):
            raise ValueError(f"text_features: expected {len(xi)} rows (one per image), got shape {xt.shape}")
        y = one_hot_view(labels)
        if len(y) != len(xi):
            raise ValueError(f"labels: expected {len(xi)} rows, got shape {np.shape(labels)}")
        self.pcas = []
        for x in (xi, xt):
            k = None if self.pca_dim is None else min(self.pca_dim, len(x) - 1)
            if k is not None and k < x.shape[1]:
                mu = x.mean(0)
                _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
                self.pcas.append((mu, vt[:k].T))
            else:
                self.pcas.append(None)
        red = [self._reduce(xi, 0), self._reduce(xt, 1)]
        k = min(self.n_components, sum(r.shape[1] for r in red) + y.shape[1])
        self.w, self.eigenvalues, self.means = multiview_cca([*red, y], k, self.reg)
        return self

    def transform(self, image_features: Any, text_features: Any) -> tuple[np.ndarray, np.ndarray]:
        """((n_i, k), (n_t, k)) float32: ``(x − μ) W_view · diag(λ^p)``, L2-normalised (cosine ≡ Euclidean)."""
        if not hasattr(self, "w"):
            raise ValueError("ThreeViewCCA: call fit() before transform()")
        scale = np.maximum(self.eigenvalues, 0.0) ** self.power
        out = []
        for i, (x, name) in enumerate(((image_features, "image_features"), (text_features, "text_features"))):
            z = (self._reduce(check_matrix(x, name, dtype=np.float64), i) - self.means[i]) @ self.w[i] * scale
            out.append((z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32))
        return out[0], out[1]


class SemanticMatching:
    """SM (Rasiwasia et al., ACM MM 2010): per modality a multinomial logistic regression on standardised features;
    the representation is the (n, c) vector of class posteriors.

    Args:
        C: inverse L2 regularisation of each regression (sklearn's ``C``). max_iter: L-BFGS iterations.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 300):
        if not (isinstance(C, (int, float)) and C > 0):
            raise ValueError(f"C: expected a number > 0, got {C!r}")
        self.C, self.max_iter = float(C), check_int(max_iter, "max_iter")

    def fit(self, image_features: Any, text_features: Any, labels: Any) -> "SemanticMatching":
        """(n, Di), (n, Dt) (need not be paired: each regression sees its own modality); labels (n,) class ids."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(labels)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"labels: SM needs (n,) integer class ids (it cannot fit multi-label data), got shape {y.shape} "
                f"dtype {y.dtype}"
            )
        self.n_classes = int(y.max()) + 1
        self.models, self.stats = [], []
        for x, name in ((image_features, "image_features"), (text_features, "text_features")):
            x = check_matrix(x, name, dtype=np.float64)
            if len(x) != len(y):
                raise ValueError(f"{name}: expected {len(y)} rows (one per label), got shape {x.shape}")
            mu, sd = x.mean(0), x.std(0) + 1e-8
            self.stats.append((mu, sd))
            self.models.append(LogisticRegression(C=self.C, max_iter=self.max_iter).fit((x - mu) / sd, y))
        return self

    def posteriors(self, features: Any, modality: int) -> np.ndarray:
        """(n, c) float32 class posteriors of one modality (0 image, 1 text); rows sum to 1."""
        mu, sd = self.stats[modality]
        x = check_matrix(features, ("image_features", "text_features")[modality], dtype=np.float64)
        m = self.models[modality]
        p = np.zeros((len(x), self.n_classes))
        p[:, m.classes_] = m.predict_proba((x - mu) / sd)  # a class absent from training keeps probability 0
        return p.astype(np.float32)

    def transform(self, image_features: Any, text_features: Any) -> tuple[np.ndarray, np.ndarray]:
        """((n_i, c), (n_t, c)) posterior vectors: the common semantic space."""
        if not hasattr(self, "models"):
            raise ValueError("SemanticMatching: call fit() before transform()")
        return self.posteriors(image_features, 0), self.posteriors(text_features, 1)
