"""Deep cross-modal hashing with domain uncertainty (thesis ch. 3 / Chen et al., ICME 2019).

Two branches map an image feature ``x`` and a bag-of-words text ``y`` into a common space:

- image: ``x → [hidden] → F (common_dim) → H = tanh(·) (n_bits)``; binary code ``B = sign(H)``;
- text:  ``y → multi-scale fusion (SSAH) → 2000 → G (common_dim) → H = tanh(·) (n_bits)``;
- a label predictor ``common_dim → 256 → c`` on F and G, and domain (modality) predictors
  ``common_dim → 256 → 2`` on F/G and ``n_bits → 256 → 2`` on the soft codes.

Losses (thesis equation numbers; every function returns the *sum* as printed unless ``reduction="mean"``):

- :func:`quantization_loss` — Eq. 3.1, ``‖H − B‖²_F``;
- :func:`negative_entropy_loss` — Eq. 3.2, ``Σ_i Σ_j P_j log P_j`` (minimising it maximises the modality
  predictor's entropy, i.e. the domain uncertainty); :func:`domain_classification_loss` trains the predictor;
- :func:`multilevel_similarity` / :func:`multilevel_similarity_loss` — Eq. 3.3, ``w_ij = t_ij / c`` and
  ``Σ (σ(2Δ_ij) − w_ij)²`` with ``Δ_ij = ½ u_iᵀ v_j``;
- :func:`binary_similarity` / :func:`pairwise_likelihood_loss` — Eqs. 3.4–3.5, the pairwise negative
  log-likelihood ``Σ softplus(Δ_ij) − S_ij Δ_ij``;
- :func:`label_prediction_loss` — Eq. 3.6, multi-label binary cross-entropy;
- :func:`total_loss` — Eq. 3.7, ``α L_d + β L_pairs + γ L_l + η L_m + ε L_q``.

Where the printed formulas cannot be used as written (see ``HashingConfig``): the sign of Eq. 3.5
(``pairwise_sign``), the domain predictor inside the same *min* as the encoders in Eq. 3.2 (``entropy_mode``),
the normalisation of the terms (``loss_reduction``) and the scale of ``w = t/c`` (``multilevel_norm``).

:func:`train_cross_modal_hashing` trains the whole model with the alternating (DCMH) optimisation: an image
pass with the text branch fixed, then a text pass with the image branch fixed, each against a buffer holding the
other modality's features of the whole training set.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core.checks import check_2d
from xmr_lib.core.setup import resolve_device
from xmr_lib.encoders.backbones import IMAGENET_MEAN, IMAGENET_STD, backbone
from xmr_lib.retrieval.losses import reduce_loss
from xmr_lib.retrieval.modality import domain_classification_loss, modality_entropy, negative_entropy_loss
from xmr_lib.train import loop

__all__ = [
    "sign_codes",
    "binary_entropy",
    "modality_entropy",
    "binary_similarity",
    "multilevel_similarity",
    "quantization_loss",
    "pairwise_likelihood_loss",
    "multilevel_similarity_loss",
    "label_prediction_loss",
    "negative_entropy_loss",
    "domain_classification_loss",
    "balance_loss",
    "total_loss",
    "LOSS_WEIGHTS",
    "MultiScaleFusion",
    "ImageHashNet",
    "TextHashNet",
    "LabelPredictor",
    "DomainPredictor",
    "HashingConfig",
    "ABLATIONS",
    "ablation_config",
    "CrossModalHashingModel",
    "train_cross_modal_hashing",
    "bit_balance",
    "term_gradient_norms",
]

# ---------------------------------------------------------------------------------------------------------------
# small helpers


def sign_codes(h: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Binary codes ``B = sign(H)`` in {−1, +1} with sign(0) = +1 (numpy and torch map 0 to 0).

    Args:
        h: (n, K) real-valued (soft) codes, torch or numpy.
    Returns:
        (n, K) codes of the same type: float ±1 for torch, int8 ±1 for numpy.
    """
    if isinstance(h, torch.Tensor):
        return torch.where(h >= 0, torch.ones_like(h), -torch.ones_like(h))
    a = np.asarray(h)
    return np.where(a >= 0, 1, -1).astype(np.int8)


def binary_entropy(p: np.ndarray | float, base: float = 2.0) -> np.ndarray:
    """Entropy of a two-outcome distribution (p, 1−p); ``base=2`` gives bits, peak 1 at p = 0.5 (Fig. 3.2b).

    Args:
        p: probabilities in [0, 1], any shape (NaN is refused: ValueError naming ``p``).
        base: the logarithm's base (2: bits, e: nats).
    Returns:
        entropy, same shape as ``p`` (0 at p ∈ {0, 1}).
    """
    try:
        p = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"p: expected probabilities in [0, 1], got {p!r}") from None
    if np.isnan(p).any():
        raise ValueError(f"p: expected probabilities in [0, 1], got NaN ({int(np.isnan(p).sum())} of {p.size} values)")
    if (
        not isinstance(base, (int, float, np.integer, np.floating))
        or isinstance(base, bool)
        or not math.isfinite(base)
        or base <= 0
        or base == 1
    ):
        raise ValueError(f"base: expected a logarithm base > 0 and ≠ 1 (2 for bits, e for nats), got {base!r}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p: expected probabilities in [0, 1], got values in [{p.min()}, {p.max()}]")
    with np.errstate(divide="ignore", invalid="ignore"):
        h = 0.0 - (np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log(1 - p), 0.0))  # +0 at 0, 1
    return h / math.log(base)


# ---------------------------------------------------------------------------------------------------------------
# supervision: S (binary) and W (multi-level)


def binary_similarity(labels_a: torch.Tensor, labels_b: torch.Tensor) -> torch.Tensor:
    """``S_ij = 1`` if items i and j share at least one label, else 0 (Eq. 3.4's supervision).

    Args:
        labels_a: (n, c) multi-hot labels; labels_b: (m, c).
    Returns:
        (n, m) float tensor of 0/1.
    """
    check_2d(labels_a, "labels_a")
    check_2d(labels_b, "labels_b", labels_a.shape[1])
    return (labels_a.float() @ labels_b.float().T > 0).float()


MULTILEVEL_NORMS = ("num_classes", "jaccard", "max_shared", "cosine")


def multilevel_similarity(
    labels_a: torch.Tensor, labels_b: torch.Tensor, norm: str = "num_classes", num_classes: int | None = None
) -> torch.Tensor:
    """Multi-level similarity weights ``w_ij`` from the number of shared labels ``t_ij = l_iᵀ l_j`` (Eq. 3.3).

    Args:
        labels_a: (n, c) multi-hot labels; labels_b: (m, c).
        norm: ``"num_classes"`` — the thesis, ``w = t / c``; ``"jaccard"`` — ``t / |l_i ∪ l_j|``;
            ``"max_shared"`` — ``t / max t`` over the matrix; ``"cosine"`` — ``t / sqrt(|l_i| |l_j|)``.
        num_classes: c for ``"num_classes"`` (default ``labels_a.shape[1]``).
    Returns:
        (n, m) float tensor in [0, 1]; 0 for pairs that share no label.
    """
    check_2d(labels_a, "labels_a")
    check_2d(labels_b, "labels_b", labels_a.shape[1])
    a, b = labels_a.float(), labels_b.float()
    t = a @ b.T
    if norm == "num_classes":
        c = labels_a.shape[1] if num_classes is None else int(num_classes)
        if c <= 0:
            raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
        return t / c
    if norm == "jaccard":
        union = a.sum(1, keepdim=True) + b.sum(1)[None, :] - t
        return torch.where(union > 0, t / union.clamp_min(1e-12), torch.zeros_like(t))
    if norm == "max_shared":
        return t / t.max().clamp_min(1.0)
    if norm == "cosine":
        den = torch.sqrt(a.sum(1, keepdim=True) * b.sum(1)[None, :])
        return torch.where(den > 0, t / den.clamp_min(1e-12), torch.zeros_like(t))
    raise ValueError(f"norm: expected one of {MULTILEVEL_NORMS}, got {norm!r}")


# ---------------------------------------------------------------------------------------------------------------
# the losses of Eqs. 3.1 – 3.7


def quantization_loss(h: torch.Tensor, b: torch.Tensor | None = None, reduction: str = "sum") -> torch.Tensor:
    """Eq. 3.1 for one modality: ``‖H − B‖²_F`` with ``B`` held fixed (default ``B = sign(H)``, detached).

    Args:
        h: (n, K) soft codes in (−1, 1).
        b: (n, K) target codes in {−1, +1}; ``None`` uses the codes' own signs (the thesis's Eq. 3.1).
        reduction: ``"sum"`` (as printed) or ``"mean"`` (divided by n: per-sample sum over bits).
    Returns:
        scalar.
    """
    check_2d(h, "h")
    if b is None:
        b = sign_codes(h.detach())
    elif b.shape != h.shape:
        raise ValueError(f"b: expected shape {tuple(h.shape)} (same as h), got {tuple(b.shape)}")
    return reduce_loss((h - b.detach()).pow(2), reduction, h.shape[0])


PAIRWISE_SIGNS = ("nll", "printed")


def pairwise_likelihood_loss(
    u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, sign: str = "nll", reduction: str = "sum"
) -> torch.Tensor:
    """Eqs. 3.4–3.5: the pairwise (DCMH) likelihood of the binary similarity S given features u, v.

    With ``Δ_ij = ½ u_iᵀ v_j`` and ``p(S_ij = 1) = σ(Δ_ij)``, the negative log-likelihood is
    ``Σ_ij softplus(Δ_ij) − S_ij Δ_ij`` (``sign="nll"``, the default). The thesis prints the bracket without the
    leading minus (``sign="printed"``: ``Σ S_ij Δ_ij − log(1 + e^Δ_ij)``), which is the log-likelihood —
    minimising it pushes similar pairs apart; it is kept only to demonstrate that.

    Args:
        u: (n, d) image-side features (F or soft codes H^v); v: (m, d) text-side features (G or H^t).
        s: (n, m) binary similarity.
        sign: ``"nll"`` or ``"printed"``.
        reduction: ``"sum"`` or ``"mean"`` (divided by n·m pairs).
    Returns:
        scalar.
    """
    check_2d(u, "u")
    check_2d(v, "v", u.shape[1])
    if s.shape != (u.shape[0], v.shape[0]):
        raise ValueError(f"s: expected shape {(u.shape[0], v.shape[0])} (rows of u × rows of v), got {tuple(s.shape)}")
    theta = 0.5 * (u @ v.T)
    nll = F.softplus(theta) - s * theta  # softplus: log(1 + e^θ) without overflow for large θ
    if sign == "nll":
        out = nll
    elif sign == "printed":
        out = -nll
    else:
        raise ValueError(f"sign: expected one of {PAIRWISE_SIGNS}, got {sign!r}")
    return reduce_loss(out, reduction, theta.numel())


def multilevel_similarity_loss(
    u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, reduction: str = "sum"
) -> torch.Tensor:
    """Eq. 3.3: ``Σ_ij (σ(2Δ_ij) − w_ij)²`` with ``Δ_ij = ½ u_iᵀ v_j`` (so ``σ(2Δ) = σ(u_iᵀ v_j)``).

    Args:
        u: (n, d); v: (m, d); w: (n, m) multi-level targets in [0, 1] (:func:`multilevel_similarity`).
        reduction: ``"sum"`` or ``"mean"`` (divided by n·m pairs).
    Returns:
        scalar.
    """
    check_2d(u, "u")
    check_2d(v, "v", u.shape[1])
    if w.shape != (u.shape[0], v.shape[0]):
        raise ValueError(f"w: expected shape {(u.shape[0], v.shape[0])}, got {tuple(w.shape)}")
    return reduce_loss((torch.sigmoid(u @ v.T) - w).pow(2), reduction, w.numel())


def label_prediction_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Eq. 3.6: multi-label binary cross-entropy of the label predictor, ``−Σ l log p + (1−l) log(1−p)``.

    Args:
        logits: (n, c) label-predictor outputs before the sigmoid; labels: (n, c) multi-hot.
        reduction: ``"sum"`` or ``"mean"`` (divided by n: per-sample sum over labels).
    Returns:
        scalar.
    """
    check_2d(logits, "logits")
    if labels.shape != logits.shape:
        raise ValueError(f"labels: expected shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
    bce = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    return reduce_loss(bce, reduction, logits.shape[0])


def balance_loss(h: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """DCMH's bit-balance term ``‖Hᵀ 1‖²`` (each bit +1 on half the items). Not in the printed Eq. 3.7.

    Args:
        h: (n, K) soft codes. Returns: scalar (``"mean"`` divides by n).
    """
    check_2d(h, "h")
    return reduce_loss(h.sum(0).pow(2), reduction, h.shape[0])


LOSS_WEIGHTS = {"domain": "alpha", "pairs": "beta", "label": "gamma", "multilevel": "eta", "quant": "eps"}


def total_loss(
    terms: dict[str, torch.Tensor],
    alpha: float = 100.0,
    beta: float = 1.0,
    gamma: float = 1.0,
    eta: float = 0.1,
    eps: float = 1.0,
    balance: float = 0.0,
) -> torch.Tensor:
    """Eq. 3.7: ``L = α L_d + β L_pairs + γ L_l + η L_m + ε L_q`` (+ an optional DCMH balance term).

    Args:
        terms: any subset of ``{"domain", "pairs", "label", "multilevel", "quant", "balance"}`` → scalar.
            A missing term counts as 0.
    Returns:
        scalar.
    """
    w = {"domain": alpha, "pairs": beta, "label": gamma, "multilevel": eta, "quant": eps, "balance": balance}
    unknown = sorted(set(terms) - set(w))
    if unknown:
        raise ValueError(f"terms: unknown term(s) {unknown}; expected a subset of {sorted(w)}")
    if not terms:
        raise ValueError("terms: empty; nothing to add")
    return sum(w[k] * v for k, v in terms.items() if w[k] != 0.0) + 0.0 * next(iter(terms.values()))


# ---------------------------------------------------------------------------------------------------------------
# networks


class MultiScaleFusion(nn.Module):
    """SSAH's multi-scale (MS) fusion of a bag-of-words vector (the thesis's "five-level pooling").

    For each level ℓ, average-pool the BoW axis with kernel = stride = ``base·ℓ`` (capped at T), scale by one
    learnable scalar (a 1×1 convolution without bias), ReLU, and resize back to length T; concatenate the input
    and the pooled maps.

    Input (n, T) → output (n, (1 + len(levels))·T).
    """

    def __init__(self, n_words: int, levels: Sequence[int] = (10, 6, 3, 2, 1), base: int = 5, mode: str = "linear"):
        super().__init__()
        if n_words < 1:
            raise ValueError(f"n_words: expected ≥ 1, got {n_words}")
        if not levels or any(int(l) < 1 for l in levels):
            raise ValueError(f"levels: expected positive ints, got {levels!r}")
        if mode not in ("linear", "nearest"):
            raise ValueError(f"mode: expected 'linear' or 'nearest', got {mode!r}")
        self.n_words, self.mode = int(n_words), mode
        self.kernels = [max(1, min(int(base) * int(l), int(n_words))) for l in levels]
        self.scale = nn.Parameter(torch.ones(len(self.kernels)))
        self.out_dim = (1 + len(self.kernels)) * self.n_words

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        check_2d(y, "y", self.n_words)
        x = y.unsqueeze(1)  # (n, 1, T)
        maps = [y]
        for i, k in enumerate(self.kernels):
            p = F.avg_pool1d(x, kernel_size=k, stride=k, ceil_mode=True)  # (n, 1, ⌈T/k⌉)
            p = F.relu(self.scale[i] * p)
            kw = {"align_corners": False} if self.mode == "linear" else {}
            maps.append(F.interpolate(p, size=self.n_words, mode=self.mode, **kw).squeeze(1))
        return torch.cat(maps, dim=1)


def _mlp(dims: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class _HashHead(nn.Module):
    """common feature (n, N) → [ReLU] → dropout → Linear → tanh soft codes (n, K)."""

    def __init__(self, common_dim: int, n_bits: int, dropout: float, feat_activation: str):
        super().__init__()
        if feat_activation not in ("none", "relu"):
            raise ValueError(f"feat_activation: expected 'none' or 'relu', got {feat_activation!r}")
        self.feat_activation = feat_activation
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(common_dim, n_bits)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        # With feat_activation="none" the common feature F is the linear output (so FᵀG may be negative, which
        # Eq. 3.3's small targets need) and the ReLU sits in front of the hash layer instead.
        return torch.tanh(self.fc(self.drop(F.relu(f))))


class ImageHashNet(nn.Module):
    """Image branch: features (n, in_dim) → [hidden ReLU layers] → F (n, common_dim) → H = tanh (n, n_bits).

    The thesis fine-tunes CNN-F and projects its 4096-d FC7 through 4096 → 512 → K; here the backbone is frozen
    and ``hidden`` adds trainable layers in its place (``hidden=()`` is the thesis's head alone).
    ``forward`` returns ``(F, H)``.
    """

    def __init__(
        self,
        in_dim: int,
        n_bits: int,
        common_dim: int = 512,
        hidden: Sequence[int] = (1024,),
        dropout: float = 0.1,
        feat_activation: str = "none",
    ):
        super().__init__()
        if in_dim < 1 or n_bits < 1 or common_dim < 1:
            raise ValueError(f"in_dim, n_bits, common_dim: expected ≥ 1, got {in_dim}, {n_bits}, {common_dim}")
        self.in_dim = int(in_dim)
        self.body = _mlp([in_dim, *hidden], dropout)
        self.common = nn.Linear(([in_dim, *hidden])[-1], common_dim)
        self.relu_feat = feat_activation == "relu"
        self.hash = _HashHead(common_dim, n_bits, dropout, feat_activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_2d(x, "x", self.in_dim)
        f = self.common(self.body(x))
        if self.relu_feat:
            f = F.relu(f)
        return f, self.hash(f)


#: image trunks the image branch can fine-tune end to end (``HashingConfig.image_trunk``)
IMAGE_TRUNKS = ("none", "alexnet")


class AlexNetFC7(nn.Module):
    """AlexNet up to fc7 (conv1 … conv5, max-pool, 6 × 6 average pool, fc6, fc7 with their ReLUs and dropouts):
    torchvision's nearest network to the thesis's CNN-F, whose 4096-d fc7 the thesis projects to 512 → K.

    Input: (n, 3·S·S) images flattened channel-first with values in [0, 1] (``image_encoder="raw"`` of
    :func:`xmr_lib.chapters.ch03.crossmodal.prepare_crossmodal_features`, so every tensor of the training loop stays
    2-D); normalised with the ImageNet mean and std here; ``channels_last`` on CUDA. Output (n, 4096).
    ``pretrained``: ImageNet weights found by :func:`xmr_lib.encoders.backbones.backbone` (never downloaded);
    ``False``: random weights (``tiny``). S ≥ 63 (the conv stack needs it).
    """

    out_dim = 4096

    def __init__(self, pretrained: bool = True):
        super().__init__()
        net = backbone("alexnet", pretrained=pretrained, device="cpu").net
        self.features, self.avgpool = net.features, net.avgpool
        self.fc = nn.Sequential(*list(net.classifier.children())[:-1])  # fc8 (1000 ImageNet classes) dropped
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_2d(x, "x")
        side = math.isqrt(x.shape[1] // 3)
        if 3 * side * side != x.shape[1] or side < 63:
            raise ValueError(
                f"x: expected (n, 3·S·S) flattened RGB images with S ≥ 63 (image_encoder='raw'), got shape "
                f"{tuple(x.shape)}"
            )
        z = (x.view(-1, 3, side, side) - self.mean) / self.std
        if z.is_cuda:
            z = z.contiguous(memory_format=torch.channels_last)
        return self.fc(torch.flatten(self.avgpool(self.features(z)), 1))


class TrunkImageHashNet(nn.Module):
    """Image branch with a fine-tuned trunk: images (n, 3·S·S) → :class:`AlexNetFC7` (4096) → the hashing head of
    :class:`ImageHashNet` (``hidden`` → F → H). ``forward`` returns ``(F, H)``."""

    def __init__(
        self,
        n_bits: int,
        common_dim: int = 512,
        hidden: Sequence[int] = (),
        dropout: float = 0.1,
        feat_activation: str = "none",
        trunk: str = "alexnet",
        pretrained: bool = True,
    ):
        super().__init__()
        if trunk != "alexnet":
            raise ValueError(f"trunk: expected 'alexnet', got {trunk!r}")
        self.trunk = AlexNetFC7(pretrained)
        self.head = ImageHashNet(AlexNetFC7.out_dim, n_bits, common_dim, hidden, dropout, feat_activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.trunk(x).float())


class TextHashNet(nn.Module):
    """Text branch: BoW (n, T) → [multi-scale fusion] → hidden (2000) → G (n, common_dim) → H = tanh (n, n_bits).

    ``multiscale=False`` replaces the MS fusion by the plain BoW input. ``forward`` returns ``(G, H)``.
    """

    def __init__(
        self,
        n_words: int,
        n_bits: int,
        common_dim: int = 512,
        hidden: int = 2000,
        multiscale: bool = True,
        levels: Sequence[int] = (10, 6, 3, 2, 1),
        dropout: float = 0.1,
        feat_activation: str = "none",
    ):
        super().__init__()
        if n_words < 1 or n_bits < 1 or common_dim < 1:
            raise ValueError(f"n_words, n_bits, common_dim: expected ≥ 1, got {n_words}, {n_bits}, {common_dim}")
        self.n_words = int(n_words)
        self.ms = MultiScaleFusion(n_words, levels) if multiscale else None
        d_in = self.ms.out_dim if self.ms is not None else n_words
        self.body = _mlp([d_in, hidden], dropout)
        self.common = nn.Linear(hidden, common_dim)
        self.relu_feat = feat_activation == "relu"
        self.hash = _HashHead(common_dim, n_bits, dropout, feat_activation)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_2d(y, "y", self.n_words)
        z = self.ms(y) if self.ms is not None else y
        g = self.common(self.body(z))
        if self.relu_feat:
            g = F.relu(g)
        return g, self.hash(g)


class LabelPredictor(nn.Module):
    """Label predictor 𝓛: common feature (n, in_dim) → 256 → c logits (sigmoid probabilities), shared by both
    modalities."""

    def __init__(self, in_dim: int, n_labels: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(hidden, n_labels),
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


class DomainPredictor(nn.Module):
    """Domain (modality) predictor 𝒟: features (n, in_dim) → 256 → 2 logits (image = 0, text = 1)."""

    def __init__(self, in_dim: int, hidden: int = 256, n_domains: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_domains))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


# ---------------------------------------------------------------------------------------------------------------
# configuration and ablations


def _whole(name: str, v: Any, lo: int) -> int:
    """``v`` as an int when it is a whole number ≥ ``lo`` (an int, numpy int or integral float such as 16.0, as
    the notebook knobs accept), else ValueError naming ``name`` (2.7, True, "8", NaN)."""
    if (
        isinstance(v, (bool, np.bool_))
        or not isinstance(v, (int, float, np.integer, np.floating))
        or not math.isfinite(float(v))
        or not float(v).is_integer()
        or v < lo
    ):
        raise ValueError(f"{name}: expected a whole number ≥ {lo}, got {v!r}")
    return int(v)


def _real(name: str, v: Any, what: str, ok: Callable[[float], bool]) -> None:
    """ValueError naming ``name`` unless ``v`` is a finite real number (not a bool) for which ``ok`` holds."""
    if (
        isinstance(v, (bool, np.bool_))
        or not isinstance(v, (int, float, np.integer, np.floating))
        or not math.isfinite(float(v))
        or not ok(float(v))
    ):
        raise ValueError(f"{name}: expected {what}, got {v!r}")


@dataclass
class HashingConfig:
    """Every setting of the ch. 3 model and its training. Defaults follow the thesis where it says something.

    Attributes (printed formula → choice):
        n_bits, common_dim: K and N (N = 512, Table 3.1).
        image_hidden, text_hidden, text_multiscale, dropout, feat_activation: the branches (§3.4.1; dropout
            "0.9" read as keep-probability → 0.1).
        alpha, beta, gamma, eta, eps: the weights of Eq. 3.7 (thesis: 100, 1, 1, 0.1, 1). 0 switches a term off
            (and with it the label / domain predictor).
        balance_weight: DCMH's bit-balance term ``‖Hᵀ1‖²`` (DCMH's η = 1). Not in the printed Eq. 3.7, but
            without it the first image pass — paired with an untrained, near-constant text buffer — pushes every
            image code the same way and bits freeze constant (0 = the printed loss, to show that).
        loss_reduction: ``"dcmh"`` — every term is summed as printed and the total divided by
            (batch × n_partners), DCMH's normalisation; ``"mean"`` — each term is a mean over its own items
            (pairs for pair terms, samples for per-sample terms).
        pair_scope: ``"buffer"`` — DCMH: each batch is paired with the whole training set of the other modality
            (its features kept in a buffer), n_partners = n_train; ``"in_batch"`` — B × B pairs within the batch.
        multilevel_norm: ``w_ij`` of Eq. 3.3 (``"num_classes"`` = t/c as printed; see :func:`multilevel_similarity`).
        quant_target: ``"own_sign"`` (Eq. 3.1, B = sign(H) of each modality) or ``"shared"`` (DCMH/SSAH,
            B = sign(H^v + H^t) over the training set, refreshed every epoch).
        pairwise_sign: ``"nll"`` (minimise the negative log-likelihood) or ``"printed"`` (Eq. 3.5 as printed).
        entropy_mode: ``"adversarial"`` — the domain predictors learn the modality by cross-entropy on detached
            features while the encoders minimise α Σ P log P through them; ``"literal"`` — Eq. 3.2 as printed,
            predictor and encoders minimise the same negative entropy (the predictor then outputs ½ everywhere
            and teaches the encoders nothing).
        domain_on: which features the domain predictors see: ``("real", "binary")`` = F/G and H (Eq. 3.2).
        d_steps: domain-predictor steps per encoder step (adversarial mode).
        epochs, batch_size, lr_start, lr_end, d_lr, weight_decay, grad_clip: optimisation (Adam; the learning
            rate decays log-linearly from lr_start to lr_end over the epochs, as "from 1e-4 to 1e-8").
    """

    n_bits: int = 32
    common_dim: int = 512
    image_hidden: tuple[int, ...] = (1024,)
    text_hidden: int = 2000
    text_multiscale: bool = True
    dropout: float = 0.1
    feat_activation: str = "none"
    alpha: float = 100.0
    beta: float = 1.0
    gamma: float = 1.0
    eta: float = 0.1
    eps: float = 1.0
    balance_weight: float = 1.0
    loss_reduction: str = "dcmh"
    pair_scope: str = "buffer"
    multilevel_norm: str = "num_classes"
    quant_target: str = "own_sign"
    pairwise_sign: str = "nll"
    entropy_mode: str = "adversarial"
    domain_on: tuple[str, ...] = ("real", "binary")
    d_steps: int = 1
    epochs: int = 30
    batch_size: int = 128
    lr_start: float = 1e-3
    lr_end: float = 1e-5
    d_lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    image_trunk: str = "none"
    trunk_pretrained: bool = True

    def __post_init__(self):
        choices = {
            "loss_reduction": ("dcmh", "mean"),
            "pair_scope": ("buffer", "in_batch"),
            "multilevel_norm": MULTILEVEL_NORMS,
            "quant_target": ("own_sign", "shared"),
            "pairwise_sign": PAIRWISE_SIGNS,
            "entropy_mode": ("adversarial", "literal"),
            "feat_activation": ("none", "relu"),
            "image_trunk": IMAGE_TRUNKS,
        }
        for k, allowed in choices.items():
            if not isinstance(getattr(self, k), str) or getattr(self, k) not in allowed:
                raise ValueError(f"{k}: expected one of {allowed}, got {getattr(self, k)!r}")
        # counts: whole numbers (not 2.7, not True), ≥ 1 (d_steps ≥ 0: 0 leaves the domain predictors untrained)
        for k, lo in (
            ("n_bits", 1),
            ("common_dim", 1),
            ("text_hidden", 1),
            ("epochs", 1),
            ("batch_size", 1),
            ("d_steps", 0),
        ):
            setattr(self, k, _whole(k, getattr(self, k), lo))
        if isinstance(self.image_hidden, (str, bytes)) or not isinstance(self.image_hidden, (list, tuple)):
            raise ValueError(
                f"image_hidden: expected a list of layer widths ≥ 1 (e.g. [1024] or []), got {self.image_hidden!r}"
            )
        self.image_hidden = tuple(_whole(f"image_hidden[{i}]", h, 1) for i, h in enumerate(self.image_hidden))
        if not isinstance(self.trunk_pretrained, (bool, np.bool_)):
            raise ValueError(f"trunk_pretrained: expected True or False, got {self.trunk_pretrained!r}")
        if not isinstance(self.text_multiscale, (bool, np.bool_)):
            raise ValueError(f"text_multiscale: expected True or False, got {self.text_multiscale!r}")
        if isinstance(self.domain_on, str) or not isinstance(self.domain_on, (list, tuple)):
            raise ValueError(f"domain_on: expected a subset of ('real', 'binary') as a tuple, got {self.domain_on!r}")
        self.domain_on = tuple(self.domain_on)
        if not set(self.domain_on) <= {"real", "binary"}:
            raise ValueError(f"domain_on: expected a subset of ('real', 'binary'), got {self.domain_on!r}")
        # real numbers: finite (NaN compares False with every bound, so it is refused by name here)
        for k in ("alpha", "beta", "gamma", "eta", "eps", "balance_weight"):
            _real(k, getattr(self, k), "a weight ≥ 0", lambda v: v >= 0)
        _real("dropout", self.dropout, "a probability in [0, 1)", lambda v: 0.0 <= v < 1.0)
        for k in ("lr_start", "lr_end", "d_lr"):
            _real(k, getattr(self, k), "a learning rate > 0", lambda v: v > 0)
        _real("weight_decay", self.weight_decay, "a number ≥ 0", lambda v: v >= 0)
        _real("grad_clip", self.grad_clip, "a norm ≥ 0 (0 = no clipping)", lambda v: v >= 0)

    def weights(self) -> dict[str, float]:
        """The Eq. 3.7 weights as keyword arguments of :func:`total_loss`."""
        return dict(
            alpha=self.alpha, beta=self.beta, gamma=self.gamma, eta=self.eta, eps=self.eps, balance=self.balance_weight
        )


#: Table 3.3's cumulative ablation: the terms each configuration switches off (weight 0).
ABLATIONS: dict[str, dict[str, float]] = {
    "Baseline1": {"gamma": 0.0, "eta": 0.0, "alpha": 0.0},  # L_pairs + L_q (DCMH-style)
    "Baseline2": {"eta": 0.0, "alpha": 0.0},  # + L_l
    "Baseline3": {"alpha": 0.0},  # + L_m
    "Full": {},  # + L_d
}


def ablation_config(config: HashingConfig, name: str) -> HashingConfig:
    """``config`` with the terms of ablation ``name`` (``"Baseline1"`` … ``"Full"``, Table 3.3) switched off."""
    if name not in ABLATIONS:
        raise ValueError(f"name: expected one of {list(ABLATIONS)}, got {name!r}")
    return replace(config, **ABLATIONS[name])


# ---------------------------------------------------------------------------------------------------------------
# the model and its training


class CrossModalHashingModel(nn.Module):
    """The two branches plus the (optional) label and domain predictors, built from a :class:`HashingConfig`."""

    def __init__(self, image_dim: int, n_words: int, n_labels: int, config: HashingConfig):
        super().__init__()
        c = config
        self.config = c
        if c.image_trunk == "none":
            self.image_net = ImageHashNet(
                image_dim, c.n_bits, c.common_dim, c.image_hidden, c.dropout, c.feat_activation
            )
        else:  # images in, the trunk fine-tuned with the hashing head (image_dim is the flattened image size)
            self.image_net = TrunkImageHashNet(
                c.n_bits, c.common_dim, c.image_hidden, c.dropout, c.feat_activation, c.image_trunk, c.trunk_pretrained
            )
        self.text_net = TextHashNet(
            n_words,
            c.n_bits,
            c.common_dim,
            c.text_hidden,
            c.text_multiscale,
            dropout=c.dropout,
            feat_activation=c.feat_activation,
        )
        self.label_predictor = LabelPredictor(c.common_dim, n_labels, dropout=c.dropout) if c.gamma > 0 else None
        use_d = c.alpha > 0
        self.domain_real = DomainPredictor(c.common_dim) if use_d and "real" in c.domain_on else None
        self.domain_binary = DomainPredictor(c.n_bits) if use_d and "binary" in c.domain_on else None
        self.history: list[dict[str, float]] = []

    def branch(self, modality: str) -> nn.Module:
        if modality not in ("image", "text"):
            raise ValueError(f"modality: expected 'image' or 'text', got {modality!r}")
        return self.image_net if modality == "image" else self.text_net

    @torch.no_grad()
    def encode(
        self, x: np.ndarray | torch.Tensor, modality: str, batch_size: int = 1024, what: str = "codes"
    ) -> np.ndarray:
        """Codes or features of a whole set, in eval mode.

        Args:
            x: (n, d) image features or (n, T) BoW texts.
            modality: ``"image"`` or ``"text"``.
            what: ``"codes"`` → (n, K) int8 ±1; ``"soft"`` → (n, K) tanh outputs; ``"features"`` → (n, N) F / G.
        """
        if what not in ("codes", "soft", "features"):
            raise ValueError(f"what: expected 'codes', 'soft' or 'features', got {what!r}")
        net = self.branch(modality)
        was = net.training
        net.eval()
        dev = next(net.parameters()).device
        out = []
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        for i in range(0, len(x), batch_size):
            f, h = net(x[i : i + batch_size].to(dev))
            out.append((f if what == "features" else h).cpu())
        net.train(was)
        z = torch.cat(out).numpy() if out else np.zeros((0, self.config.n_bits), np.float32)
        return sign_codes(z) if what == "codes" else z


def bit_balance(codes: np.ndarray | torch.Tensor) -> np.ndarray:
    """Fraction of +1 per bit over a set of codes, (K,) in [0, 1]. A constant bit has balance 0 or 1."""
    c = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes: expected a 2-D array (n, K), got shape {c.shape}")
    return (c > 0).mean(axis=0)


def term_gradient_norms(terms: dict[str, torch.Tensor], wrt: torch.Tensor) -> dict[str, float]:
    """‖∂ term / ∂ wrt‖ (Frobenius) for each (already weighted) loss term: which term steers the features.

    Args:
        terms: name → scalar tensor that depends on ``wrt``; wrt: e.g. the (B, N) batch features.
    Returns:
        name → gradient norm (0 for a term that does not depend on ``wrt``).
    """
    out = {}
    for k, v in terms.items():
        if not v.requires_grad:
            out[k] = 0.0
            continue
        (g,) = torch.autograd.grad(v, wrt, retain_graph=True, allow_unused=True)
        out[k] = 0.0 if g is None else float(g.norm())
    return out


def _lr_at(c: HashingConfig, epoch: int) -> float:
    if c.epochs <= 1:
        return c.lr_start
    r = epoch / (c.epochs - 1)
    return float(math.exp(math.log(c.lr_start) * (1 - r) + math.log(c.lr_end) * r))


def _as_tensor(name: str, a: Any, rows: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).float()
    if t.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n, d), got shape {tuple(t.shape)}")
    if rows is not None and t.shape[0] != rows:
        raise ValueError(f"{name}: expected {rows} rows (one per training pair), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return t


class HashingTask(loop.Task):
    """The alternating (DCMH) training of :func:`train_cross_modal_hashing` as a :class:`xmr_lib.train.loop.Task`.

    An epoch is an image pass then a text pass; each step updates one branch (and the label predictor, and in
    ``entropy_mode="literal"`` the domain predictors) against the other modality's buffered features, then, in
    ``entropy_mode="adversarial"``, gives the domain predictors ``d_steps`` steps of their own. Every epoch appends
    one dict of statistics to ``model.history``.

    Args:
        model: the :class:`CrossModalHashingModel`, already on the device of ``X``, ``Y``, ``L``.
        X, Y, L: (n, d_img) image features, (n, T) texts and (n, c) labels, as float tensors on the model's device.
        gen: the ``torch.Generator`` of the batch order.
        probe_every, on_epoch: as in :func:`train_cross_modal_hashing`.
    """

    def __init__(
        self,
        model: CrossModalHashingModel,
        X: torch.Tensor,
        Y: torch.Tensor,
        L: torch.Tensor,
        gen: torch.Generator,
        probe_every: int = 1,
        on_epoch: Callable[[int, dict], None] | None = None,
    ):
        c = self.c = model.config
        self.model, self.X, self.Y, self.L, self.gen = model, X, Y, L, gen
        self.probe_every, self.on_epoch = probe_every, on_epoch
        self.n, self.bs, self.wts = X.shape[0], min(c.batch_size, X.shape[0]), c.weights()
        self.enc_params = {"image": list(model.image_net.parameters()), "text": list(model.text_net.parameters())}
        lab_params = list(model.label_predictor.parameters()) if model.label_predictor is not None else []
        dom_modules = [m for m in (model.domain_real, model.domain_binary) if m is not None]
        dom_params = [p for m in dom_modules for p in m.parameters()]
        # one optimiser per branch (alternating passes), one for the heads updated in both passes: the label
        # predictor, and in "literal" mode the domain predictors (θ_d inside the same min as in Eq. 3.2)
        # a fine-tuned trunk's ~57 M parameters: the fused Adam kernel (8× faster on a CPU core than the per-tensor one)
        fused = {"image": {"fused": True}} if c.image_trunk != "none" else {}
        self.opt = {
            k: torch.optim.Adam(v, lr=c.lr_start, weight_decay=c.weight_decay, **fused.get(k, {}))
            for k, v in self.enc_params.items()
        }
        head_params = lab_params + (dom_params if c.entropy_mode == "literal" else [])
        self.opt_heads = (
            torch.optim.Adam(head_params, lr=c.lr_start, weight_decay=c.weight_decay) if head_params else None
        )
        self.opt_d = torch.optim.Adam(dom_params, lr=c.d_lr) if dom_params and c.entropy_mode == "adversarial" else None
        # buffers of the whole training set: common features and soft codes of each modality (DCMH's F and G)
        model.eval()
        with torch.no_grad():
            self.buf = {
                "image": [t.clone() for t in _batched(model.image_net, X)],
                "text": [t.clone() for t in _batched(model.text_net, Y)],
            }
        model.train()
        self.shared_b = sign_codes(self.buf["image"][1] + self.buf["text"][1])
        self.inputs = {"image": X, "text": Y}
        self.S_full = self.W_full = None
        if c.pair_scope == "buffer":
            self.S_full = binary_similarity(L, L)
            self.W_full = multilevel_similarity(L, L, c.multilevel_norm) if c.eta > 0 else None
        self.t0 = time.perf_counter()
        self.n_seen = 0
        self.lr, self.sums, self.counts, self.probe_now = c.lr_start, {}, {}, False  # this epoch's

    _DOMAIN_ID = {"image": 0, "text": 1}

    def _acc(self, key: str, val: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(val)
        self.counts[key] = self.counts.get(key, 0) + 1

    def on_epoch_start(self, trainer: loop.Trainer, epoch: int) -> None:
        c = self.c
        self.lr = _lr_at(c, epoch)
        for o in [*self.opt.values(), self.opt_heads]:
            for g in o.param_groups if o is not None else []:
                g["lr"] = self.lr
        self.sums, self.counts = {}, {}
        self.probe_now = self.probe_every > 0 and (epoch % self.probe_every == 0 or epoch == c.epochs - 1)

    def batches(self, trainer: loop.Trainer, epoch: int):
        for mod in ("image", "text"):  # the image pass, then the text pass
            perm = torch.randperm(self.n, generator=self.gen).to(self.X.device)
            for b in range(max(1, self.n // self.bs)):
                yield mod, b, perm[b * self.bs : (b + 1) * self.bs]

    def training_step(self, trainer: loop.Trainer, batch) -> dict:
        c, model, L, wts = self.c, self.model, self.L, self.wts
        mod, b, ind = batch
        other = "text" if mod == "image" else "image"
        f, h = model.branch(mod)(self.inputs[mod][ind])
        if c.pair_scope == "buffer":
            of, oh = self.buf[other][0], self.buf[other][1]
            S = self.S_full[ind]
            W = self.W_full[ind] if self.W_full is not None else None
        else:
            with torch.no_grad():
                of, oh = model.branch(other)(self.inputs[other][ind])
            S = binary_similarity(L[ind], L[ind])
            W = multilevel_similarity(L[ind], L[ind], c.multilevel_norm) if c.eta > 0 else None
        n_part = of.shape[0]
        terms = self.loss_terms(f, h, of, oh, S, W, L[ind], mod, self.shared_b[ind])
        terms = {k: v / _normaliser(k, c.loss_reduction, len(ind), n_part) for k, v in terms.items()}
        total = total_loss(terms, **wts)
        if self.probe_now and b == 0:
            weighted = {k: wts[_WEIGHT_OF[k]] * v for k, v in terms.items() if wts[_WEIGHT_OF[k]] > 0}
            for k, g in term_gradient_norms(weighted, f).items():
                self._acc(f"{mod}/grad_F/{k}", g)
            for k, g in term_gradient_norms(weighted, h).items():
                self._acc(f"{mod}/grad_H/{k}", g)
        return {"loss": total, "terms": terms, "f": f, "h": h, "of": of, "oh": oh}

    def loss_terms(self, f, h, of, oh, S, W, lab, mod: str, shared_b) -> dict[str, torch.Tensor]:
        """Hook: the unnormalised (summed) loss terms of one pass, the batch's ``(f, h)`` of ``mod`` against the
        other modality's ``(of, oh)`` (:func:`_loss_terms`; a subclass may compute them another way)."""
        return _loss_terms(self.model, self.c, f, h, of, oh, S, W, lab, mod, shared_b, self._DOMAIN_ID[mod])

    def optimizers(self, trainer: loop.Trainer, batch) -> list:
        return [self.opt[batch[0]], self.opt_heads]

    def clip_gradients(self, trainer: loop.Trainer, batch) -> None:
        if self.c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.enc_params[batch[0]], self.c.grad_clip)

    def on_step_end(self, trainer: loop.Trainer, batch, out: dict) -> None:
        c, buf = self.c, self.buf
        mod, _, ind = batch
        other = "text" if mod == "image" else "image"
        self.n_seen += len(ind)
        for k, v in out["terms"].items():
            self._acc(f"{mod}/{k}", v.item())
        self._acc(f"{mod}/total", out["loss"].item())
        with torch.no_grad():
            fd, hd = out["f"].detach().float(), out["h"].detach().float()  # float32 buffers under AMP
            if c.pair_scope == "buffer":
                buf[mod][0][ind], buf[mod][1][ind] = fd, hd
            if self.opt_d is not None:
                ofd, ohd = (
                    (buf[other][0][ind], buf[other][1][ind]) if c.pair_scope == "buffer" else (out["of"], out["oh"])
                )
        for _ in range(c.d_steps if self.opt_d is not None else 0):
            dl = _domain_step_loss(self.model, fd, hd, ofd, ohd, self._DOMAIN_ID[mod])
            trainer.optimize(dl, [self.opt_d])
            self._acc("domain_ce", dl.item())

    def on_epoch_end(self, trainer: loop.Trainer, epoch: int) -> None:
        c, model = self.c, self.model
        if c.pair_scope == "in_batch" or c.quant_target == "shared" or epoch == c.epochs - 1:
            model.eval()
            with torch.no_grad():
                self.buf = {
                    "image": list(_batched(model.image_net, self.X)),
                    "text": list(_batched(model.text_net, self.Y)),
                }
            model.train()
        buf = self.buf
        self.shared_b = sign_codes(buf["image"][1] + buf["text"][1])
        stats = {k: self.sums[k] / self.counts[k] for k in self.sums}
        stats.update(
            epoch=epoch,
            lr=self.lr,
            seconds=time.perf_counter() - self.t0,
            pairs_per_s=self.n_seen / max(time.perf_counter() - self.t0, 1e-9),
        )
        stats.update(_domain_diagnostics(model, buf))
        bb = bit_balance(torch.cat([buf["image"][1], buf["text"][1]]))
        stats["bit_balance_min"] = float(np.minimum(bb, 1 - bb).min())
        model.history.append(stats)
        trainer.set_postfix(loss=f"{stats.get('image/total', 0):.3g}/{stats.get('text/total', 0):.3g}")
        if self.on_epoch is not None:
            self.on_epoch(epoch, stats)


def train_cross_modal_hashing(
    image_x: Any,
    text_y: Any,
    labels: Any,
    config: HashingConfig | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    probe_every: int = 1,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> CrossModalHashingModel:
    """Train the ch. 3 model (Eqs. 3.1–3.7) on paired training data with the alternating (DCMH) strategy.

    Per epoch: an image pass (text branch fixed), then a text pass (image branch fixed). In each pass the batch
    of the updated modality is paired with the other modality's features of the whole training set, held in
    buffers that every pass refreshes (``pair_scope="buffer"``), or with the other modality's batch features
    (``"in_batch"``). The label predictor is updated in both passes. In ``entropy_mode="adversarial"`` the domain
    predictors take ``d_steps`` cross-entropy steps on the detached batch features of both modalities after
    each encoder step.

    Args:
        image_x: (n, d_img) image features of the training pairs.
        text_y: (n, T) bag-of-words texts.
        labels: (n, c) multi-hot labels.
        config: :class:`HashingConfig`.
        seed: seeds the initialisation and the batch order.
        device: ``"auto"`` | ``"cpu"`` | ``"cuda"``.
        progress: show a tqdm bar over epochs.
        probe_every: record the per-term gradient norms on the features every this many epochs (0 = never).
        on_epoch: called as ``on_epoch(epoch, stats)`` after each epoch (e.g. to checkpoint).
    Returns:
        the trained :class:`CrossModalHashingModel`; ``model.history`` holds one dict per epoch with every loss
        term (``"<pass>/<term>"``, unweighted, normalised as in the total), the total, the domain predictors'
        entropy and accuracy, the bit balance and the gradient norms of the weighted terms.
    """
    c = config or HashingConfig()
    X = _as_tensor("image_x", image_x)
    n = X.shape[0]
    Y = _as_tensor("text_y", text_y, n)
    L = _as_tensor("labels", labels, n)
    if n < 2:
        raise ValueError(f"image_x: need at least 2 training pairs, got {n}")
    dev = torch.device(resolve_device(device))
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    model = CrossModalHashingModel(X.shape[1], Y.shape[1], L.shape[1], c).to(dev)
    # a fine-tuned trunk trains under the loop's bf16 AMP and channels_last on CUDA (no-ops on the CPU)
    trainer = loop.Trainer(
        max_epochs=c.epochs, device=dev, progress=progress, desc=f"hashing {c.n_bits} bits", amp=c.image_trunk != "none"
    )
    trainer.prepare(model)
    task = HashingTask(model, X.to(dev), Y.to(dev), L.to(dev), gen, probe_every, on_epoch)
    trainer.fit(task)
    model.eval()
    return model


_PAIR_TERMS = ("pairs", "multilevel")


def _normaliser(term: str, loss_reduction: str, batch: int, n_partners: int) -> float:
    """What a summed term is divided by: DCMH divides every term by batch × n_partners; "mean" divides pair
    terms by their number of pairs and per-sample terms by the batch size."""
    if loss_reduction == "dcmh" or term in _PAIR_TERMS:
        return float(batch * n_partners)
    return float(batch)


_WEIGHT_OF = {
    "domain": "alpha",
    "pairs": "beta",
    "label": "gamma",
    "multilevel": "eta",
    "quant": "eps",
    "balance": "balance",
}


def _batched(net: nn.Module, x: torch.Tensor, bs: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    fs, hs = [], []
    for i in range(0, len(x), bs):
        f, h = net(x[i : i + bs])
        fs.append(f)
        hs.append(h)
    return torch.cat(fs), torch.cat(hs)


def _loss_terms(
    model: CrossModalHashingModel, c: HashingConfig, f, h, of, oh, S, W, lab, mod: str, shared_b, dom: int
) -> dict[str, torch.Tensor]:
    """Unnormalised (summed) loss terms for one pass: batch features (f, h) of ``mod`` against (of, oh)."""
    # Δ and Γ always put the image on the left: for a text batch the pairs are (buffer image i, batch text j)
    u_r, v_r, u_b, v_b = (f, of, h, oh) if mod == "image" else (of, f, oh, h)
    s = S if mod == "image" else S.T
    terms = {
        "pairs": pairwise_likelihood_loss(u_r, v_r, s, c.pairwise_sign)
        + pairwise_likelihood_loss(u_b, v_b, s, c.pairwise_sign),
        "quant": quantization_loss(h, shared_b if c.quant_target == "shared" else None),
    }
    if c.eta > 0:
        w = W if mod == "image" else W.T
        terms["multilevel"] = multilevel_similarity_loss(u_r, v_r, w) + multilevel_similarity_loss(u_b, v_b, w)
    if model.label_predictor is not None:
        terms["label"] = label_prediction_loss(model.label_predictor(f), lab)
    if c.alpha > 0:
        d = f.new_zeros(())
        if model.domain_real is not None:
            d = d + negative_entropy_loss(model.domain_real(f))
        if model.domain_binary is not None:
            d = d + negative_entropy_loss(model.domain_binary(h))
        terms["domain"] = d
    if c.balance_weight > 0:
        terms["balance"] = balance_loss(h)
    return terms


def _domain_step_loss(model: CrossModalHashingModel, f, h, of, oh, dom: int) -> torch.Tensor:
    """Modality cross-entropy of the domain predictors on detached features of both modalities."""
    loss = f.new_zeros(())
    for m, (a, b) in ((model.domain_real, (f, of)), (model.domain_binary, (h, oh))):
        if m is None:
            continue
        loss = loss + domain_classification_loss(m(a), dom) + domain_classification_loss(m(b), 1 - dom)
    return loss


@torch.no_grad()
def _domain_diagnostics(model: CrossModalHashingModel, buf: dict) -> dict[str, float]:
    """Entropy (bits) and accuracy of the current domain predictors over the training buffers."""
    out = {}
    for name, m, i in (("real", model.domain_real, 0), ("binary", model.domain_binary, 1)):
        if m is None:
            continue
        was = m.training
        m.eval()
        li, lt = m(buf["image"][i]), m(buf["text"][i])
        m.train(was)
        ent = torch.cat([modality_entropy(li), modality_entropy(lt)]).mean() / math.log(2)
        accu = torch.cat([(li.argmax(1) == 0), (lt.argmax(1) == 1)]).float().mean()
        out[f"D_{name}/entropy_bits"] = float(ent)
        out[f"D_{name}/accuracy"] = float(accu)
    return out
