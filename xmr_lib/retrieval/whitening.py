"""Whitening of global descriptors: PCA-whitening (unsupervised) and learned whitening from matching pairs.

Both are linear maps ``x ↦ P (x − m)`` followed by L2 normalisation, learned on a set of descriptors that is
**disjoint from the test database** (the classic protocols learn Oxford's whitening on Paris and vice versa,
cirtorch learns it on retrieval-SfM-120k): learned on the test set itself it over-fits (SPoC paper; PWA#6).

- :func:`learn_pca_whitening` — ``P = Λ^{-power} Vᵀ`` from the covariance ``C = V Λ Vᵀ`` of the learning set
  (Jégou & Chum 2012; "PCA_w" in the thesis's tables 2.2-2.3). ``power = 0.5`` is full whitening, ``0.25`` the
  partial whitening of dirtorch (``whitenp``), ``0`` plain PCA (rotation and dimension reduction only).
- :func:`learn_supervised_whitening` — Mikolajczyk & Matas / Radenović et al.'s "L_w": whiten the intra-class
  (matching-pair) covariance, then rotate to the principal directions of the whitened data.

A learned :class:`Whitening` is applied with ``w(x, dim=...)`` (numpy in → numpy out, torch in → torch out) or
turned into a trainable ``nn.Linear`` with :meth:`Whitening.to_linear` (weight ``P``, bias ``−P m``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

__all__ = ["Whitening", "learn_pca_whitening", "learn_supervised_whitening", "apply_whitening"]

EPS = 1e-6


def _as_matrix(x: Any, name: str, min_rows: int = 1) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_vectors, dim), got shape {a.shape}")
    if len(a) < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} vectors to learn from, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf values")
    return a


def _check_dim(dim: int | None, limit: int, name: str = "dim") -> int:
    if dim is None:
        return limit
    if int(dim) != dim or not 1 <= int(dim) <= limit:
        raise ValueError(f"{name}: expected an int in [1, {limit}], got {dim!r}")
    return int(dim)


def apply_whitening(
    x: Any, mean: np.ndarray, projection: np.ndarray, dim: int | None = None, normalize: bool = True
) -> Any:
    """``L2(P[:dim] (x − m))`` for every row of ``x``.

    Args:
        x: ``(N, D)`` numpy array or torch tensor (a torch result keeps the device and floating dtype).
        mean: ``(D,)``; projection: ``(D_out, D)`` with rows sorted by importance.
        dim: keep the first ``dim`` output dimensions (``None`` = all).
    Returns:
        ``(N, dim)``: float32 numpy for numpy input, a tensor for tensor input.
    """
    projection = np.asarray(projection)
    mean = np.asarray(mean)
    if projection.ndim != 2 or mean.shape != (projection.shape[1],):
        raise ValueError(
            f"projection, mean: expected shapes (D_out, D) and (D,), got {projection.shape} and {mean.shape}"
        )
    d = _check_dim(dim, projection.shape[0])
    is_torch = isinstance(x, torch.Tensor)
    if is_torch:
        if x.ndim != 2 or x.shape[1] != projection.shape[1]:
            raise ValueError(f"x: expected shape (N, {projection.shape[1]}), got {tuple(x.shape)}")
        dt = x.dtype if x.is_floating_point() else torch.float32
        P = torch.as_tensor(projection[:d], dtype=dt, device=x.device)
        m = torch.as_tensor(mean, dtype=dt, device=x.device)
        y = (x.to(dt) - m) @ P.T
        if normalize:
            y = y / (torch.linalg.vector_norm(y, dim=1, keepdim=True) + EPS)
        return y
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != projection.shape[1]:
        raise ValueError(f"x: expected shape (N, {projection.shape[1]}), got {a.shape}")
    y = (a - mean) @ projection[:d].T
    if normalize:
        y = y / (np.linalg.norm(y, axis=1, keepdims=True) + EPS)
    return y.astype(np.float32)


@dataclass(frozen=True)
class Whitening:
    """A learned whitening ``x ↦ L2(P[:dim] (x − m))``.

    Attributes:
        mean: ``(D,)`` centre ``m``.
        projection: ``(D_out, D)`` matrix ``P``, rows sorted by decreasing importance (so ``dim`` keeps the best).
        eigenvalues: ``(D_out,)`` variances along the rows' directions in the learning set (PCA) or of the
            whitened data (learned whitening).
        kind: ``"pca"`` or ``"supervised"``.
        power: the eigenvalue power used (PCA only).
        n_samples: size of the learning set.
    """

    mean: np.ndarray
    projection: np.ndarray
    eigenvalues: np.ndarray
    kind: str
    power: float = 0.5
    n_samples: int = 0

    @property
    def input_dim(self) -> int:
        return int(self.projection.shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.projection.shape[0])

    def __call__(self, x: Any, dim: int | None = None, normalize: bool = True) -> Any:
        """Apply to ``(N, D)`` vectors (see :func:`apply_whitening`)."""
        return apply_whitening(x, self.mean, self.projection, dim, normalize)

    def to_linear(self, dim: int | None = None) -> nn.Linear:
        """An ``nn.Linear(D, dim)`` with ``weight = P[:dim]`` and ``bias = −P[:dim] m`` (to fine-tune end to end)."""
        d = _check_dim(dim, self.output_dim)
        lin = nn.Linear(self.input_dim, d, bias=True)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(self.projection[:d], dtype=torch.float32))
            lin.bias.copy_(torch.as_tensor(-self.projection[:d] @ self.mean, dtype=torch.float32))
        return lin


def _check_eps(eps: Any) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise ValueError(
            f"eps: expected a number >= 0 (a relative eigenvalue floor, e.g. 1e-10), got {eps!r}"
        ) from None
    if not 0.0 <= e < float("inf"):
        raise ValueError(f"eps: expected a finite number >= 0 (a relative eigenvalue floor, e.g. 1e-10), got {eps!r}")
    return e


def _check_floored(w: np.ndarray, eps: float) -> None:
    """After the floor every eigenvalue must be > 0, else its gain ``λ^{-power}`` is infinite (only with eps = 0)."""
    if not (w > 0).all():
        raise ValueError(
            f"eps: {eps!r} leaves {int(np.count_nonzero(~(w > 0)))} eigenvalue(s) at or below 0 (the "
            "learning data has no variance along them), whose gain would be infinite; pass eps > 0 "
            "(default 1e-10) or a smaller dim"
        )


def _check_cov(c: np.ndarray, name: str) -> np.ndarray:
    """A covariance that overflowed float64 (descriptors of norm ~1e154 and beyond) would make ``eigh`` fail."""
    if not np.isfinite(c).all():
        raise ValueError(
            f"{name}: values too large: their covariance overflows float64 (|x| beyond ~1e150); "
            "L2-normalise the descriptors first"
        )
    return c


def _sorted_eigh(c: np.ndarray, top: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric matrix (float64), eigenvalues in decreasing order, the ``top`` largest
    pairs when ``top`` is given. Uses ``torch.linalg.eigh``, several times faster than numpy's on small CPUs."""
    w, v = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray((c + c.T) / 2.0)))
    w, v = w.numpy()[::-1], v.numpy()[:, ::-1]
    if top is not None:
        w, v = w[:top], v[:, :top]
    return np.ascontiguousarray(w), np.ascontiguousarray(v)


def _check_variance(top: float, a: np.ndarray) -> None:
    """The largest variance must be a meaningful fraction of the vectors' squared norm (and a normal float)."""
    scale = float(np.mean(np.einsum("ij,ij->i", a, a)))
    if not (top > 1e-24 * scale and top > np.finfo(np.float64).tiny / np.finfo(np.float64).eps):
        raise ValueError(
            f"x: the {len(a)} learning vectors have no variance (largest eigenvalue {top:.3g}, mean "
            f"squared norm {scale:.3g}): they are all the same vector (or too small to be resolved), so there is "
            "no direction to whiten; learn the whitening on distinct descriptors"
        )


def learn_pca_whitening(x: Any, dim: int | None = None, power: float = 0.5, eps: float = 1e-10) -> Whitening:
    """Learn PCA-whitening on ``x`` (``(N, D)``, one descriptor per row — a set disjoint from the test data).

    ``m = mean(x)``, ``C = (1/N) Σ (x_i − m)(x_i − m)ᵀ = V Λ Vᵀ`` (eigenvalues decreasing) and
    ``P = Λ^{−power} Vᵀ`` truncated to ``dim`` rows. Eigenvalues below ``eps · λ_max`` are raised to it so that
    directions without variance in the learning set (there are ``D − N + 1`` of them when ``N ≤ D``) get a large
    but finite gain — which is exactly why full whitening learned on too few samples hurts retrieval.

    Rank-deficient learning sets (choice made here): as long as the learning set has *some* variance, the null
    directions are kept with the floored eigenvalue above (documented, finite, the classic behaviour; use ``dim``
    ≤ the rank to keep only the non-null directions). A learning set with **no** variance at all (every vector
    the same, up to ``1e-12`` relative to the vectors' norm) defines no direction to whiten: it raises a
    ``ValueError`` instead of returning a whitening that maps every vector to zero.

    Args:
        x: learning descriptors (L2-normalised, as produced by :mod:`xmr_lib.retrieval.pooling`).
        dim: output dimensions kept (``None`` = ``D``).
        power: 0.5 full whitening, 0.25 partial (dirtorch), 0 PCA rotation only.
        eps: relative eigenvalue floor (>= 0; 0 only for full-rank data).
    Raises:
        ValueError: ``x`` has no variance (all vectors equal), or values whose covariance overflows; ``eps`` < 0, or
            0 on rank-deficient data (infinite gains).
    """
    a = _as_matrix(x, "x", min_rows=2)
    d = _check_dim(dim, a.shape[1])
    if not 0.0 <= float(power) <= 1.0:
        raise ValueError(f"power: expected a number in [0, 1] (0.5 = full whitening), got {power!r}")
    eps = _check_eps(eps)
    m = a.mean(axis=0)
    xc = a - m
    n = len(a)
    if d <= n - 1 < a.shape[1]:
        # fewer vectors than dimensions: the N×N Gram matrix has the same non-zero eigenvalues, and its eigenvectors
        # map to the covariance's (v = xcᵀu / √(N λ)) — O(N²D) instead of O(D³)
        w, u = _sorted_eigh(_check_cov(xc @ xc.T / n, "x"), top=d)
        _check_variance(float(w[0]), a)
        w = np.maximum(w, eps * max(float(w[0]), np.finfo(np.float64).tiny))
        _check_floored(w, eps)
        v = xc.T @ u / np.sqrt(n * w)[None, :]
    else:
        w, v = _sorted_eigh(_check_cov(xc.T @ xc / n, "x"), top=d)
        _check_variance(float(w[0]), a)
    w = np.maximum(w, eps * max(float(w[0]), np.finfo(np.float64).tiny))
    _check_floored(w[:d], eps)
    P = (w[:d] ** -float(power))[:, None] * v[:, :d].T
    return Whitening(mean=m, projection=P, eigenvalues=w[:d], kind="pca", power=float(power), n_samples=len(a))


def learn_supervised_whitening(
    x: Any, query_idx: Any, positive_idx: Any, dim: int | None = None, eps: float = 1e-10
) -> Whitening:
    """Learned whitening ("L_w") from matching pairs (Mikolajczyk & Matas 2007; Radenović et al. [57]).

    1. ``m`` = mean of the query vectors ``x[query_idx]``;
    2. ``C_S = (1/|P|) Σ_{(i,j)} (x_i − x_j)(x_i − x_j)ᵀ`` over the pairs ``(query_idx[t], positive_idx[t])``;
    3. ``P₁`` with ``P₁ C_S P₁ᵀ = I``: matching pairs become isotropic. cirtorch takes ``chol(C_S)^{-1}`` (adding
       ``αI`` until the factorisation succeeds); we take ``Λ^{-1/2} Vᵀ`` from ``C_S = V Λ Vᵀ`` with eigenvalues below
       ``eps · λ_max`` raised to it. Both differ by a rotation, which step 5 undoes, so ``P`` is the same (up to
       the signs of its rows) when ``C_S`` is positive definite; ours needs one decomposition instead of retries;
    4. ``D = Σ_i P₁(x_i − m) (P₁(x_i − m))ᵀ`` over all vectors, ``D = U Σ Uᵀ`` (decreasing);
    5. ``P = Uᵀ P₁``, so the first rows keep the directions of largest whitened variance.

    Args:
        x: ``(N, D)`` descriptors of the learning set.
        query_idx, positive_idx: ``(M,)`` row indices of matching pairs (``M ≥ 1``).
        dim: output dimensions kept.
        eps: relative eigenvalue floor of ``C_S`` (fewer pairs than dimensions leave it singular); >= 0 (0 only
            when ``C_S`` has full rank).
    Raises:
        ValueError: the pairs are uninformative (every pair joins two equal vectors, e.g. a vector with itself, so
            ``C_S = 0`` and no direction is defined), ``x`` overflows, or ``eps`` < 0 (or 0 with a singular ``C_S``).
    """
    a = _as_matrix(x, "x", min_rows=2)
    for name, idx in (("query_idx", query_idx), ("positive_idx", positive_idx)):
        raw = np.asarray(idx)
        if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(np.mod(raw, 1) == 0)):
            raise ValueError(
                f"{name}: expected integer row indices, got dtype {raw.dtype}"
                + (f" with a fractional value {raw[np.mod(raw, 1) != 0].flat[0]!r}" if raw.dtype.kind == "f" else "")
            )
    qi = np.asarray(query_idx, dtype=np.int64).reshape(-1)
    pi = np.asarray(positive_idx, dtype=np.int64).reshape(-1)
    if qi.shape != pi.shape or len(qi) == 0:
        raise ValueError(
            f"query_idx, positive_idx: expected two non-empty index arrays of the same length, got "
            f"shapes {qi.shape} and {pi.shape}"
        )
    for name, idx in (("query_idx", qi), ("positive_idx", pi)):
        if idx.min() < 0 or idx.max() >= len(a):
            raise ValueError(f"{name}: indices must be in [0, {len(a)}), got range [{idx.min()}, {idx.max()}]")
    d = _check_dim(dim, a.shape[1])
    eps = _check_eps(eps)
    m = a[qi].mean(axis=0)
    df = a[qi] - a[pi]
    cs = _check_cov(df.T @ df / len(df), "x")
    ws, vs = _sorted_eigh(cs)
    scale = float(np.mean(np.einsum("ij,ij->i", a, a)))
    if not (float(ws[0]) > 1e-24 * scale and float(ws[0]) > np.finfo(np.float64).tiny / np.finfo(np.float64).eps):
        same = int(np.count_nonzero(qi == pi))
        raise ValueError(
            f"query_idx, positive_idx: the {len(qi)} pairs carry no information: x[query_idx] − "
            f"x[positive_idx] is zero for every pair ({same} pair(s) join a vector with itself, the rest "
            "equal vectors), so the matching-pair covariance is 0 and learned whitening is undefined; "
            "pass pairs of distinct matching descriptors"
        )
    ws = np.maximum(ws, eps * max(float(ws[0]), np.finfo(np.float64).tiny))
    _check_floored(ws, eps)
    p1 = (ws**-0.5)[:, None] * vs.T  # P₁ C_S P₁ᵀ = I
    z = (a - m) @ p1.T
    w, u = _sorted_eigh(z.T @ z / len(a), top=d)
    P = u[:, :d].T @ p1
    return Whitening(mean=m, projection=P, eigenvalues=w[:d], kind="supervised", power=0.0, n_samples=len(a))
