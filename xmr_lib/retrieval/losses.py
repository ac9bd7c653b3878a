"""Metric-learning losses for retrieval, as the papers write them.

Thesis chapter 2 (§2.4.1.2) writes the verification losses on the **squared** Euclidean
distance of Eq. (2.14), ``D(x_i, x_j) = ||f(x_i) − f(x_j)||²₂``:

- :func:`contrastive_loss` — Siamese loss, Eq. (2.16): ``½ S D + ½ (1 − S) max(0, m − D)``
  (``form="thesis"``), or the form of the reference code cnnimageretrieval-pytorch that trained the GeM networks,
  ``½ S d² + ½ (1 − S) max(0, m − d)²`` with the *plain* distance ``d = √D`` (``form="cirtorch"``). The margin
  sits on different quantities: a cirtorch margin ``m`` acts like a thesis margin ``m²`` for the hinge's
  threshold, and the hinge is squared only in cirtorch. Margins are not interchangeable between the forms.
- :func:`double_margin_contrastive_loss` — Eq. (2.19): ``½ S max(0, D − m₁) + ½ (1 − S) max(0, m₂ − D)``.
- :func:`triplet_loss` — Eq. (2.17): ``max(0, m + D(a, p) − D(a, n))``, one or several negatives per anchor.

Descriptors are ``(B, D)`` tensors (usually L2-normalised, so ``D ∈ [0, 4]``); ``reduction`` is ``"mean"``,
``"sum"`` or ``"none"`` over pairs / triplets. Other notebooks add their losses to this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xmr_lib.core.checks import check_int_labels, check_same_shape

__all__ = ["squared_distance", "contrastive_loss", "double_margin_contrastive_loss", "triplet_loss"]


def _reduce(v: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return v.mean()
    if reduction == "sum":
        return v.sum()
    if reduction == "none":
        return v
    raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")


def _labels(similar, n: int, device) -> torch.Tensor:
    s = torch.as_tensor(similar, device=device)
    if s.shape != (n,):
        raise ValueError(
            f"similar: expected {n} labels (1 = matching pair, 0 = non-matching), got shape {tuple(s.shape)}"
        )
    if ((s != 0) & (s != 1)).any():
        raise ValueError(f"similar: labels must be 0 or 1, got values {sorted(set(s.tolist()))}")
    return s.to(torch.get_default_dtype())


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. (2.14): ``D = ||a − b||²₂`` row by row, ``(B, D), (B, D) → (B,)``."""
    check_same_shape(a, "a", b, "b")
    return (a - b).pow(2).sum(dim=1)


def contrastive_loss(
    x1: torch.Tensor,
    x2: torch.Tensor,
    similar,
    margin: float = 0.7,
    form: str = "thesis",
    reduction: str = "mean",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Siamese / contrastive loss over pairs ``(x1[i], x2[i])``.

    Args:
        x1, x2: ``(B, D)`` descriptors of the two images of each pair.
        similar: ``(B,)`` 1 for a matching pair, 0 for a non-matching one (``S`` of Eq. 2.16).
        margin: ``m``. For ``form="thesis"`` it bounds the squared distance (Eq. 2.16); for ``form="cirtorch"``
            the plain distance (cirtorch's default 0.7, 0.85 for its ResNet-101 recipe).
        form: ``"thesis"`` — ``½ S D + ½ (1 − S) max(0, m − D)`` with squared D (Eq. 2.14/2.16);
            ``"cirtorch"`` — ``½ S d² + ½ (1 − S) max(0, m − d)²`` with ``d = ||x1 − x2 + eps||₂``.
        reduction: over pairs (cirtorch sums over the pairs of a tuple).
    Returns:
        the loss (a scalar, or ``(B,)`` for ``reduction="none"``).
    """
    check_same_shape(x1, "x1", x2, "x2")
    s = _labels(similar, len(x1), x1.device).to(x1.dtype)
    if not float(margin) > 0:
        raise ValueError(f"margin: expected a positive number, got {margin!r}")
    if form == "thesis":
        d2 = squared_distance(x1, x2)
        v = 0.5 * s * d2 + 0.5 * (1 - s) * torch.clamp(margin - d2, min=0)
    elif form == "cirtorch":
        d = torch.linalg.vector_norm(x1 - x2 + eps, dim=1)
        v = 0.5 * s * d.pow(2) + 0.5 * (1 - s) * torch.clamp(margin - d, min=0).pow(2)
    else:
        raise ValueError(f"form: expected 'thesis' (Eq. 2.16) or 'cirtorch', got {form!r}")
    return _reduce(v, reduction)


def double_margin_contrastive_loss(
    x1: torch.Tensor,
    x2: torch.Tensor,
    similar,
    margin_pos: float = 0.1,
    margin_neg: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """Double-margin Siamese loss, Eq. (2.19): ``½ S max(0, D − m₁) + ½ (1 − S) max(0, m₂ − D)``, squared D.

    Matching pairs are only pulled together once their squared distance exceeds ``margin_pos`` (m₁); non-matching
    ones pushed apart while closer than ``margin_neg`` (m₂). The thesis gives no values; ours are placeholders.
    """
    check_same_shape(x1, "x1", x2, "x2")
    s = _labels(similar, len(x1), x1.device).to(x1.dtype)
    if not (float(margin_pos) >= 0 and float(margin_neg) > 0):
        raise ValueError(f"margin_pos, margin_neg: expected m1 >= 0 and m2 > 0, got {margin_pos!r}, {margin_neg!r}")
    d2 = squared_distance(x1, x2)
    v = 0.5 * s * torch.clamp(d2 - margin_pos, min=0) + 0.5 * (1 - s) * torch.clamp(margin_neg - d2, min=0)
    return _reduce(v, reduction)


def triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.1, reduction: str = "mean"
) -> torch.Tensor:
    """Triplet loss, Eq. (2.17): ``max(0, m + D(a, p) − D(a, n))`` with squared distances.

    Args:
        anchor, positive: ``(B, D)``.
        negative: ``(B, D)`` (one negative per anchor) or ``(B, K, D)`` (K negatives, one triplet each — cirtorch's
            tuple layout, where the per-tuple loss is the sum over its negatives).
        margin: ``m`` on squared distances (cirtorch default 0.1).
        reduction: over triplets (``"none"`` returns ``(B,)`` or ``(B, K)``).
    """
    check_same_shape(anchor, "anchor", positive, "positive")
    if (
        not isinstance(negative, torch.Tensor)
        or negative.ndim not in (2, 3)
        or negative.shape[0] != anchor.shape[0]
        or negative.shape[-1] != anchor.shape[1]
    ):
        raise ValueError(
            f"negative: expected shape ({anchor.shape[0]}, {anchor.shape[1]}) or "
            f"({anchor.shape[0]}, K, {anchor.shape[1]}), got "
            f"{tuple(negative.shape) if isinstance(negative, torch.Tensor) else type(negative).__name__}"
        )
    if not float(margin) >= 0:
        raise ValueError(f"margin: expected a number >= 0, got {margin!r}")
    d_ap = squared_distance(anchor, positive)
    if negative.ndim == 2:
        d_an = squared_distance(anchor, negative)
    else:
        d_an = (anchor[:, None, :] - negative).pow(2).sum(dim=2)
        d_ap = d_ap[:, None]
    return _reduce(torch.clamp(margin + d_ap - d_an, min=0), reduction)


def _hinge_rows(s: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, margin: float, mining: str) -> torch.Tensor:
    """Σ over anchors (rows) of ``Σ_{p ∈ pos} max(0, m − S_p + S_n)`` with the hardest (or every) negative n.

    ``s`` (A, B) similarities; ``pos``, ``neg`` (A, B) bool masks. Anchors without a negative contribute 0.
    """
    if mining == "hardest":
        has_neg = neg.any(1, keepdim=True)
        hardest = torch.where(
            has_neg, s.masked_fill(~neg, float("-inf")).max(1, keepdim=True).values, torch.zeros_like(s[:, :1])
        )
        return ((margin - s + hardest).clamp(min=0) * (pos & has_neg)).sum()
    v = (margin - s[:, :, None] + s[:, None, :]).clamp(min=0) * (pos[:, :, None] & neg[:, None, :])
    return v.sum()


def bidirectional_triplet_loss(
    z_image: torch.Tensor,
    z_text: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.5,
    mining: str = "hardest",
    intra: bool = True,
) -> torch.Tensor:
    """Eqs. 4.12–4.14: ``L_tr = L_inter + L_intra`` on cosine similarities, hinge with margin m.

    Positives of an anchor are the in-batch items of the other (inter) or same (intra) modality with the same
    instance label (its own pair included; for intra the anchor itself is excluded); the negative is the most
    similar item with a different label (``mining="hardest"``, VSE++'s max violation; the thesis's "hard
    sampling") or every violating one (``"all"``). Each sum is divided by N.

    Args:
        z_image, z_text: (N, d) paired features (normalised inside: S is the cosine). labels: (N,) instance labels.
        margin: m (0.5 in the thesis). mining: ``"hardest"`` | ``"all"``. intra: add L_intra (Eq. 4.13).
    Returns:
        scalar ≥ 0.
    """
    check_same_shape(z_image, "z_image", z_text, "z_text")
    check_int_labels(labels, "labels", z_image.shape[0])
    if not (isinstance(margin, (int, float)) and margin >= 0):
        raise ValueError(f"margin: expected a number >= 0, got {margin!r}")
    if mining not in ("hardest", "all"):
        raise ValueError(f"mining: expected 'hardest' or 'all', got {mining!r}")
    n = z_image.shape[0]
    zi, zt = F.normalize(z_image, dim=1), F.normalize(z_text, dim=1)
    same = labels[:, None] == labels[None, :]
    s_it = zi @ zt.T
    loss = _hinge_rows(s_it, same, ~same, margin, mining) + _hinge_rows(s_it.T, same.T, ~same.T, margin, mining)
    if intra:  # the anchor itself is neither a positive nor a negative
        eye = torch.eye(n, dtype=torch.bool, device=z_image.device)
        for z in (zi, zt):
            loss = loss + _hinge_rows(z @ z.T, same & ~eye, ~same, margin, mining)
    return loss / n


def reduce_loss(x: torch.Tensor, reduction: str, n: float) -> torch.Tensor:
    """Sum of ``x``, or that sum divided by ``n`` (the number of items the term averages over)."""
    if reduction == "sum":
        return x.sum()
    if reduction == "mean":
        return x.sum() / n
    raise ValueError(f"reduction: expected 'sum' or 'mean', got {reduction!r}")
