"""Information theory + adversarial learning for a real-valued image–text common space (thesis ch. 4, ITMeetsAL).

Two projection networks map frozen image features and text features into a shared ``d``-dimensional space
(``Z^i``, ``Z^t``). On top of them (the equation numbers of thesis chapter 4):

- a **modality classifier** D (the discriminator, Fig. 4.3) trained with the modality cross-entropy
  :func:`modality_classification_loss` (Eq. 4.5), while the encoders *maximise its entropy*:
  :func:`negative_modality_entropy_loss` (Eq. 4.4, ``L_s = −H(P_D)``); Algorithm 1 alternates ``k`` encoder
  steps with one D step. ``adversary="grl"`` is the plain adversary instead (the encoders maximise D's
  cross-entropy through :func:`grad_reverse`, as in ACMR / DANN); ``"separate"`` is the Fig. 4.8 paradigm
  (an uncertainty head whose entropy is maximised plus a modality head behind a gradient-reversal layer);
- the **KL projection loss** :func:`kl_projection_loss` (Eqs. 4.1–4.3, 4.6–4.9) between the row-softmax of
  ``A_{i→t} = Z^i (Z̄^t)ᵀ`` / ``A_{t→i}`` and a label target;
- the **instance-label classifier** :class:`NormSoftmaxClassifier` with :func:`norm_softmax_projection_loss`
  (Eq. 4.10, CMPC) and the temperature KL :func:`tempered_kl_loss` (Eq. 4.11) for the caption imbalance;
- the **bi-directional triplet loss** :func:`bidirectional_triplet_loss` (Eqs. 4.12–4.14, inter + intra,
  hardest negative per anchor).

Where the printed formulas cannot be used as written:

- Eq. 4.8 (``softmax(Y_lᵀ Y_l)``) contradicts the ``+ε`` of Eq. 4.9: ``kl_target="cmpm"`` (default) uses
  CMPM's ``mask / rowsum(mask)`` target, ``"softmax"`` the literal Eq. 4.8;
- Eq. 4.11 compares each distribution with itself (``log p/(p+ε)`` ≈ 0): ``di_form="symmetric"`` (default)
  is the KL between the image→text and text→image tempered distributions, ``"printed"`` the literal form;
- Eq. 4.15 puts D inside a *max* of the encoders' loss; Algorithm 1 updates D only with ``∇L_c``, which is what
  :func:`train_common_space` does.

Evaluation: :func:`retrieval_metrics` gives Recall@K in both directions and the standard mAP; the chapter's
"mAP" came from an evaluation that drops the hit itself (:func:`thesis_map_excluding_hit`; for a single
relevant item it equals R@1) and is reported only to line up with the thesis tables.

Data: :func:`shape_caption_benchmark` builds an offline caption benchmark (easy-vqa shapes, five templated
captions per image, instance label = image) with the Flickr30K protocol.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core import parallel
from xmr_lib.core.checks import check_2d, check_int_labels, check_positive, check_same_shape
from xmr_lib.core.setup import resolve_device
from xmr_lib.data.registry import karpathy_caption_benchmark  # the reader lives in data/; kept importable here
from xmr_lib.data.shape_captions import ShapeCaptions
from xmr_lib.encoders import text as _text
from xmr_lib.encoders.features import image_features
from xmr_lib.retrieval.losses import bidirectional_triplet_loss
from xmr_lib.retrieval.metrics import mean_average_precision, recall_at_k
from xmr_lib.retrieval.modality import (
    IMAGE,
    TEXT,
    ModalityClassifier,
    grad_reverse,
    modality_classification_loss,
    modality_entropy,
    modality_probe_accuracy,
    negative_modality_entropy_loss,
)
from xmr_lib.train import loop

__all__ = [
    # losses
    "modality_entropy",
    "projection_similarity",
    "paired_projection",
    "label_target",
    "kl_projection_loss",
    "norm_softmax_projection_loss",
    "tempered_kl_loss",
    # modules
    "ProjectionNet",
    "NormSoftmaxClassifier",
    "CommonSpaceModel",
    # training
    "CommonSpaceConfig",
    "ABLATIONS",
    "ABLATION_LABELS",
    "ablation_config",
    "TrainHistory",
    "train_common_space",
    "embed",
    # evaluation
    "cross_modal_relevance",
    "thesis_map_excluding_hit",
    "retrieval_metrics",
    "noise_stability",
    "complexity",
    # data "shape_image_features", "caption_features",
    "CaptionSplit",
    "split_benchmark",
    "run_configs",
    "karpathy_caption_benchmark",
]


# ---------------------------------------------------------------------------------------------------------------
# helpers


# ---------------------------------------------------------------------------------------------------------------
# the adversary: entropy (Eq. 4.4), modality classification (Eq. 4.5), gradient reversal (§4.5.4)


# ---------------------------------------------------------------------------------------------------------------
# cross-modal projection (Eqs. 4.1–4.3) and the KL projection loss (Eqs. 4.6–4.9)


def projection_similarity(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """Eqs. 4.2/4.3: ``A_{a→b} = Z^a (Z̄^b)ᵀ``, the scalar projections of every ``z^a_j`` on every unit
    ``z̄^b_k``.

    Args:
        z_a: (N, d); z_b: (M, d).
    Returns:
        (N, M): ``A[j, k] = ⟨z^a_j, z^b_k / ‖z^b_k‖⟩``.
    """
    check_2d(z_a, "z_a")
    check_2d(z_b, "z_b", z_a.shape[1])
    return z_a @ F.normalize(z_b, dim=1).T


def paired_projection(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """Eq. 4.1 on pairs: ``ẑ_j^{a→b} = ⟨z^a_j, z̄^b_j⟩ z̄^b_j`` (row j of ``z_a`` projected on row j of
    ``z_b``).

    Args:
        z_a, z_b: (N, d) paired rows.
    Returns:
        (N, d) projected vectors (length ``|⟨z^a_j, z̄^b_j⟩|``, direction ``±z̄^b_j``).
    """
    check_same_shape(z_a, "z_a", z_b, "z_b")
    zb = F.normalize(z_b, dim=1)
    return (z_a * zb).sum(1, keepdim=True) * zb


def label_target(labels: torch.Tensor, target: str = "cmpm") -> torch.Tensor:
    """The supervisory matrix ``Q_y`` of Eq. 4.8 for a batch of instance labels.

    Args:
        labels: (N,) integer instance labels.
        target: ``"cmpm"`` — ``mask / rowsum(mask)`` with ``mask[j, k] = [y_j = y_k]`` (CMPM's target, zero for
            different labels; the reading the ``+ε`` of Eq. 4.9 needs); ``"softmax"`` — the printed Eq. 4.8, the
            row-softmax of the 0/1 same-label matrix (never zero).
    Returns:
        (N, N) row-stochastic matrix.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.dtype.is_floating_point:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels: expected a 1-D integer tensor (N,), got {got}")
    mask = (labels[:, None] == labels[None, :]).float()
    if target == "cmpm":
        return mask / mask.sum(1, keepdim=True)
    if target == "softmax":
        return torch.softmax(mask, dim=1)
    raise ValueError(f"target: expected 'cmpm' or 'softmax', got {target!r}")


def kl_projection_loss(
    z_image: torch.Tensor, z_text: torch.Tensor, labels: torch.Tensor, target: str = "cmpm", eps: float = 1e-8
) -> torch.Tensor:
    """Eq. 4.9: ``L_kl = (1/N) [Σ Σ P_{i→t} log(P_{i→t}/(Q_y+ε)) + Σ Σ P_{t→i} log(P_{t→i}/(Q_y+ε))]``.

    ``P_{i→t} = softmax(A_{i→t})`` row-wise (Eqs. 4.6/4.7, CMPM's axis), ``Q_y`` from :func:`label_target`.

    Args:
        z_image, z_text: (N, d) paired features (row j of each is pair j). labels: (N,) instance labels.
        target: ``"cmpm"`` (default) or ``"softmax"`` (printed Eq. 4.8). eps: ε of Eq. 4.9.
    Returns:
        scalar ≥ 0 up to ε (0 when each row's softmax equals the target).
    """
    check_same_shape(z_image, "z_image", z_text, "z_text")
    check_int_labels(labels, "labels", z_image.shape[0])
    log_q = torch.log(label_target(labels, target) + eps)
    loss = z_image.new_zeros(())
    for a in (projection_similarity(z_image, z_text), projection_similarity(z_text, z_image)):
        log_p = F.log_softmax(a, dim=1)
        loss = loss + (log_p.exp() * (log_p - log_q)).sum() / a.shape[0]
    return loss


# ---------------------------------------------------------------------------------------------------------------
# instance-label classification (Eq. 4.10) and the tempered KL for data imbalance (Eq. 4.11)


def norm_softmax_projection_loss(
    logits_i2t: torch.Tensor, logits_t2i: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Eq. 4.10: categorical cross-entropy of the norm-softmax classifier on both projections, summed.

    Args:
        logits_i2t: (N, C) ``Wᵀ ẑ^{i→t}`` with unit-norm columns of W (see :class:`NormSoftmaxClassifier`);
        logits_t2i: (N, C) ``Wᵀ ẑ^{t→i}``; labels: (N,) instance labels in [0, C).
    Returns:
        scalar ``CE(i→t) + CE(t→i)`` (each averaged over the N pairs).
    """
    check_same_shape(logits_i2t, "logits_i2t", logits_t2i, "logits_t2i")
    check_int_labels(labels, "labels", logits_i2t.shape[0])
    return F.cross_entropy(logits_i2t, labels) + F.cross_entropy(logits_t2i, labels)


def tempered_kl_loss(
    logits_i2t: torch.Tensor,
    logits_t2i: torch.Tensor,
    tau: float = 4.0,
    form: str = "symmetric",
    detach: str = "none",
    eps: float = 1e-8,
) -> torch.Tensor:
    """Eq. 4.11, ``L_di``: a KL between the classifier's tempered outputs ``p = softmax(Wᵀẑ / τ)``, times τ².

    Args:
        logits_i2t, logits_t2i: (N, C) classifier logits of the two projections of each pair.
        tau: temperature τ > 0 (τ = 1: plain KL; the thesis picks τ = 4, Table 4.5).
        form: ``"symmetric"`` (default:
            ``τ²/N Σ_j [KL(p_j^{i→t} ‖ p_j^{t→i}) + KL(p_j^{t→i} ‖ p_j^{i→t})]``, the text's "KL between the
            re-scaled probabilities") or ``"printed"`` (Eq. 4.11 as printed,
            ``τ²/N Σ p log(p/(p+ε))`` for each projection alone — it compares a distribution with itself and is
            ≈ 0 with no useful gradient; kept to show why).
        detach: ``"none"`` (both sides learn), ``"text_target"`` (``p^{t→i}`` is a fixed teacher) or
            ``"image_target"`` (``p^{i→t}`` is the teacher); only for ``form="symmetric"``.
    Returns:
        scalar ≥ 0 (symmetric) or ≈ 0 (printed).
    """
    check_same_shape(logits_i2t, "logits_i2t", logits_t2i, "logits_t2i")
    tau = check_positive(tau, "tau")
    n = logits_i2t.shape[0]
    lp_it, lp_ti = F.log_softmax(logits_i2t / tau, dim=1), F.log_softmax(logits_t2i / tau, dim=1)
    if form == "printed":
        p_it, p_ti = lp_it.exp(), lp_ti.exp()
        return (
            tau**2
            / n
            * ((p_it * (lp_it - torch.log(p_it + eps))).sum() + (p_ti * (lp_ti - torch.log(p_ti + eps))).sum())
        )
    if form != "symmetric":
        raise ValueError(f"form: expected 'symmetric' or 'printed', got {form!r}")
    if detach == "text_target":
        lp_ti = lp_ti.detach()
    elif detach == "image_target":
        lp_it = lp_it.detach()
    elif detach != "none":
        raise ValueError(f"detach: expected 'none', 'text_target' or 'image_target', got {detach!r}")
    kl_a = (lp_it.exp() * (lp_it - lp_ti)).sum()
    kl_b = (lp_ti.exp() * (lp_ti - lp_it)).sum()
    return tau**2 / n * (kl_a + kl_b)


# ---------------------------------------------------------------------------------------------------------------
# bi-directional triplet loss (Eqs. 4.12–4.14)


# ---------------------------------------------------------------------------------------------------------------
# networks


class ProjectionNet(nn.Module):
    """Non-shared encoder head: frozen uni-modal feature (n, in_dim) → common space (n, out_dim).

    ``hidden=0``: one linear layer (+ BatchNorm), CMPM's "1×1 conv, no activation"; ``hidden>0``: a two-layer
    MLP (Linear → BN → ReLU → Dropout → Linear), used when the uni-modal features are frozen.
    """

    def __init__(self, in_dim: int, out_dim: int = 512, hidden: int = 1024, dropout: float = 0.1):
        super().__init__()
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden),
                nn.BatchNorm1d(hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out_dim),
            )
        else:
            self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim))
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_2d(x, "x", self.in_dim)
        return self.net(x)


class NormSoftmaxClassifier(nn.Module):
    """Instance-label classifier of Eq. 4.10: ``logits = ẑ W`` with unit-norm columns of W, no bias (CMPC)."""

    def __init__(self, dim: int, n_classes: int, seed: int = 0):
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes: expected an int >= 2, got {n_classes!r}")
        g = torch.Generator().manual_seed(seed)
        w = torch.empty(dim, n_classes)
        bound = math.sqrt(6.0 / (dim + n_classes))
        self.weight = nn.Parameter(w.uniform_(-bound, bound, generator=g))
        self.dim = dim

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        check_2d(z_hat, "z_hat", self.dim)
        return z_hat @ F.normalize(self.weight, dim=0)


class CommonSpaceModel(nn.Module):
    """E1, E2 (projection heads), the label classifier P and the adversary heads D (and U for ``"separate"``)."""

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        n_classes: int,
        dim: int = 512,
        hidden: int = 1024,
        dropout: float = 0.1,
        d_hidden: int = 256,
        seed: int = 0,
    ):
        super().__init__()
        torch.manual_seed(seed)
        self.image = ProjectionNet(image_dim, dim, hidden, dropout)
        self.text = ProjectionNet(text_dim, dim, hidden, dropout)
        self.classifier = NormSoftmaxClassifier(dim, n_classes, seed)
        self.discriminator = ModalityClassifier(dim, d_hidden)
        self.uncertainty = ModalityClassifier(dim, d_hidden)  # only used by adversary="separate" (Fig. 4.8)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [*self.image.parameters(), *self.text.parameters(), *self.classifier.parameters()]

    def adversary_parameters(self) -> list[nn.Parameter]:
        return [*self.discriminator.parameters(), *self.uncertainty.parameters()]


# ---------------------------------------------------------------------------------------------------------------
# configuration, ablations and training (Algorithm 1)


@dataclass
class CommonSpaceConfig:
    """Every knob of the ch. 4 objective (Eq. 4.15) and schedule (Algorithm 1). Defaults: the thesis / spec.

    Loss weights (all 1 in the thesis; 0 switches a term off): ``w_ce`` (Eq. 4.10), ``w_di`` (4.11), ``w_kl``
    (4.9), ``w_tr`` (4.14), ``w_adv`` (the adversary: 4.4 for ``"entropy"``, reversed 4.5 for ``"grl"``).
    """

    dim: int = 512
    hidden: int = 1024
    dropout: float = 0.1
    d_hidden: int = 256
    w_ce: float = 1.0
    w_di: float = 1.0
    w_kl: float = 1.0
    w_tr: float = 1.0
    w_adv: float = 1.0
    adversary: str = "entropy"  # none | entropy (Eq. 4.4, Fig. 4.3) | grl (plain adversary) | separate (Fig. 4.8)
    grl_coeff: float = 1.0
    k_steps: int = 5  # encoder steps per discriminator step (Algorithm 1, §4.5.1)
    tau: float = 4.0
    di_form: str = "symmetric"  # symmetric | printed
    di_detach: str = "none"
    kl_target: str = "cmpm"  # cmpm | softmax
    margin: float = 0.5
    mining: str = "hardest"
    intra: bool = True
    lr: float = 2e-4  # Adam, encoders + classifier (CMPM's stage-1 rate; lr2 in Algorithm 1)
    lr_d: float = 2e-4  # Adam, discriminator
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 10
    # end to end (the full profile, xmr_lib.chapters.ch04.endtoend): "" = precomputed features (the rest unused)
    image_backbone: str = ""  # a trunk of endtoend.TRUNKS, fine-tuned at lr_backbone (lr_1 of Algorithm 1)
    pretrained: bool = True  # False: a randomly initialised trunk (tiny=True)
    lr_backbone: float = 2e-5
    lr_decay: float = 1.0  # both learning rates × lr_decay every decay_every epochs (§4.5.1)
    decay_every: int = 2
    vocab_size: int = 0  # words of the Bi-LSTM's vocabulary
    word_dim: int = 300
    text_hidden: int = 512  # per direction: 1024-d text features
    text_dropout: float = 0.3

    def __post_init__(self):
        choices = {
            "adversary": ("none", "entropy", "grl", "separate"),
            "di_form": ("symmetric", "printed"),
            "di_detach": ("none", "text_target", "image_target"),
            "kl_target": ("cmpm", "softmax"),
            "mining": ("hardest", "all"),
        }
        for k, ok in choices.items():
            if getattr(self, k) not in ok:
                raise ValueError(f"{k}: expected one of {ok}, got {getattr(self, k)!r}")
        for k in ("batch_size", "epochs", "k_steps", "dim"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{k}: expected an int >= 1, got {v!r}")
        check_positive(self.tau, "tau")


# Table 4.4's rows and §4.5.3's ablations, as config overrides (ABLATION_LABELS: how tables name them).
ABLATIONS: dict[str, dict[str, Any]] = {
    "B1": {"w_di": 0.0, "w_kl": 0.0, "adversary": "none"},  # L_ce + L_tr
    "B2": {"w_kl": 0.0, "adversary": "none"},  # + L_di
    "B3": {"adversary": "none"},  # + L_kl
    "Full": {},  # + L_s + L_c (entropy adversary)
    "Full-noDI": {"w_di": 0.0},  # full method without the KL imbalance term
    "Full-noKL": {"w_kl": 0.0},  # full method without the KL projection term
    "Full-GRL": {"adversary": "grl"},  # plain adversary instead of the entropy adversary
    "Full-separate": {"adversary": "separate"},  # Fig. 4.8 paradigm
}
ABLATION_LABELS = {
    "B1": "Baseline1: L_ce + L_tr",
    "B2": "Baseline2: + L_di",
    "B3": "Baseline3: + L_kl",
    "Full": "Full: + L_s + L_c (entropy adversary)",
    "Full-noDI": "Full without L_di",
    "Full-noKL": "Full without L_kl",
    "Full-GRL": "Full, plain adversary (GRL) instead of L_s",
    "Full-separate": "Full, separate uncertainty + GRL heads (Fig. 4.8)",
}


def ablation_config(config: CommonSpaceConfig, name: str) -> CommonSpaceConfig:
    """``config`` with the overrides of :data:`ABLATIONS` ``[name]`` (B1, B2, B3, Full, ...)."""
    if name not in ABLATIONS:
        raise ValueError(f"name: expected one of {list(ABLATIONS)}, got {name!r}")
    return replace(config, **ABLATIONS[name])


@dataclass
class TrainHistory:
    """Per-epoch means of every loss term, D's modality entropy (nats, max log 2) and accuracy, seconds."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    def curve(self, key: str) -> list[float]:
        return [e.get(key, float("nan")) for e in self.epochs]


def _generator_terms(
    model: CommonSpaceModel, c: CommonSpaceConfig, xi: torch.Tensor, xt: torch.Tensor, y: torch.Tensor, grl: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    zi, zt = model.image(xi), model.text(xt)
    t: dict[str, torch.Tensor] = {}
    li2t = model.classifier(paired_projection(zi, zt))
    lt2i = model.classifier(paired_projection(zt, zi))
    t["ce"] = norm_softmax_projection_loss(li2t, lt2i, y)
    if c.w_di:
        t["di"] = tempered_kl_loss(li2t, lt2i, c.tau, c.di_form, c.di_detach)
    if c.w_kl:
        t["kl"] = kl_projection_loss(zi, zt, y, c.kl_target)
    t["tr"] = bidirectional_triplet_loss(zi, zt, y, c.margin, c.mining, c.intra)
    if c.adversary == "entropy":
        t["adv"] = negative_modality_entropy_loss(model.discriminator(zi), model.discriminator(zt))
    elif c.adversary == "grl":
        t["adv"] = modality_classification_loss(
            model.discriminator(grad_reverse(zi, grl)), model.discriminator(grad_reverse(zt, grl))
        )
    elif c.adversary == "separate":
        t["adv"] = negative_modality_entropy_loss(
            model.uncertainty(zi), model.uncertainty(zt)
        ) + modality_classification_loss(
            model.discriminator(grad_reverse(zi, grl)), model.discriminator(grad_reverse(zt, grl))
        )
    w = {"ce": c.w_ce, "di": c.w_di, "kl": c.w_kl, "tr": c.w_tr, "adv": c.w_adv}
    total = sum(w[k] * v for k, v in t.items())
    return total, t


class CommonSpaceTask(loop.Task):
    """Algorithm 1 of :func:`train_common_space` as a :class:`xmr_lib.train.loop.Task`: each step is an encoder step
    on the generator terms (the adversary's parameters fixed), followed every ``k_steps`` steps by one step of the
    adversary on ``L_c`` (every step with ``adversary="none"``). ``hist`` (:class:`TrainHistory`) gets one record
    of per-epoch means per epoch.

    Args:
        model: the :class:`CommonSpaceModel`, on the device of the tensors. config: :class:`CommonSpaceConfig`.
        xi_all: (n_images, Di) image features; xt_all: (n_pairs, Dt) caption features; pi: (n_pairs,) image index
            of each caption (long), all on the model's device.
        seed: seeds the batch order. callback: ``callback(epoch, model)`` after every epoch.
    """

    def __init__(self, model, config, xi_all, xt_all, pi, seed: int, callback=None):
        c = self.c = config
        self.model, self.callback = model, callback
        self.opt = torch.optim.Adam(model.encoder_parameters(), lr=c.lr, weight_decay=c.weight_decay)
        self.opt_d = torch.optim.Adam(model.adversary_parameters(), lr=c.lr_d)
        self.xi_all, self.xt_all, self.pi = xi_all, xt_all, pi
        self.g = torch.Generator().manual_seed(seed)
        self.hist = TrainHistory()
        self.t0, self.sums, self.count = 0.0, {}, 0  # this epoch's clock, running sums and batch count

    def on_epoch_start(self, trainer: loop.Trainer, epoch: int) -> None:
        self.model.train()
        self.t0, self.sums, self.count = time.time(), {}, 0

    def batches(self, trainer: loop.Trainer, epoch: int):
        bs, n = self.c.batch_size, len(self.pi)
        order = torch.randperm(n, generator=self.g).to(self.pi.device)
        for b in range(n // bs):  # drop the last, incomplete batch (BatchNorm, in-batch negatives)
            yield order[b * bs : (b + 1) * bs]

    def training_step(self, trainer: loop.Trainer, idx: torch.Tensor) -> dict:
        y = self.pi[idx]
        xi, xt = self.xi_all[y], self.xt_all[idx]
        for p in self.model.adversary_parameters():
            p.requires_grad_(False)  # θ_D fixed during the encoder step
        total, terms = _generator_terms(self.model, self.c, xi, xt, y, self.c.grl_coeff)
        return {"loss": total, "terms": terms, "xi": xi, "xt": xt}

    def optimizers(self, trainer: loop.Trainer, idx: torch.Tensor) -> list:
        return [self.opt]

    def on_step_end(self, trainer: loop.Trainer, idx: torch.Tensor, out: dict) -> None:
        c, model = self.c, self.model
        for p in model.adversary_parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            zi, zt = model.image(out["xi"]), model.text(out["xt"])  # θ_E fixed from here on
        li, lt = model.discriminator(zi), model.discriminator(zt)
        with torch.no_grad():
            ent = 0.5 * (modality_entropy(li).mean() + modality_entropy(lt).mean())
            acc = 0.5 * ((li.argmax(1) == IMAGE).float().mean() + (lt.argmax(1) == TEXT).float().mean())
        # one D step on L_c (Eq. 4.5) every k encoder steps (trainer.global_step counts the encoder steps); with
        # adversary="none" D still learns every step (for the diagnostics) but never acts on the encoders
        if c.adversary == "none" or trainer.global_step % c.k_steps == 0:
            l_c = modality_classification_loss(li, lt)
            if c.adversary == "separate":
                l_c = l_c + modality_classification_loss(model.uncertainty(zi), model.uncertainty(zt))
            trainer.optimize(l_c, [self.opt_d])
        sums = self.sums
        for k, v in out["terms"].items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        sums["total"] = sums.get("total", 0.0) + float(out["loss"].detach())
        sums["d_entropy"] = sums.get("d_entropy", 0.0) + float(ent)
        sums["d_accuracy"] = sums.get("d_accuracy", 0.0) + float(acc)
        self.count += 1

    def on_epoch_end(self, trainer: loop.Trainer, epoch: int) -> None:
        rec = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        rec["seconds"] = time.time() - self.t0
        self.hist.epochs.append(rec)
        if self.callback is not None:
            self.callback(epoch, self.model)


def train_common_space(
    image_features: np.ndarray | torch.Tensor,
    text_features: np.ndarray | torch.Tensor,
    pair_image: np.ndarray | torch.Tensor,
    config: CommonSpaceConfig | None = None,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    callback: Callable[[int, CommonSpaceModel], None] | None = None,
) -> tuple[CommonSpaceModel, TrainHistory]:
    """Train the ch. 4 model with Algorithm 1: ``k`` encoder steps (D fixed), then one D step on ``L_c``.

    Every caption is one training pair (caption, its image); the instance label is the image index.

    Args:
        image_features: (n_images, Di) frozen image features. text_features: (n_pairs, Dt) one row per caption.
        pair_image: (n_pairs,) index of each caption's image (= its instance label).
        config: :class:`CommonSpaceConfig` (default: the thesis settings).
        seed: initialisation, shuffling and dropout. device: ``"cpu"`` / ``"cuda"`` / ``"auto"``.
        callback: called as ``callback(epoch, model)`` after every epoch (e.g. to checkpoint).
    Returns:
        ``(model, history)``; the model is in eval mode.
    """
    c = config or CommonSpaceConfig()
    dev = torch.device(resolve_device(device))
    xi_all = torch.as_tensor(np.asarray(image_features, dtype=np.float32))
    xt_all = torch.as_tensor(np.asarray(text_features, dtype=np.float32))
    pi = torch.as_tensor(np.asarray(pair_image), dtype=torch.long)
    check_2d(xi_all, "image_features")
    check_2d(xt_all, "text_features")
    if pi.shape != (xt_all.shape[0],):
        raise ValueError(
            f"pair_image: expected shape ({xt_all.shape[0]},) (one image index per caption), got {tuple(pi.shape)}"
        )
    if len(pi) and (int(pi.min()) < 0 or int(pi.max()) >= xi_all.shape[0]):
        raise ValueError(
            f"pair_image: indices must lie in [0, {xi_all.shape[0]}), got [{int(pi.min())}, {int(pi.max())}]"
        )
    torch.manual_seed(seed)
    model = CommonSpaceModel(
        xi_all.shape[1], xt_all.shape[1], xi_all.shape[0], c.dim, c.hidden, c.dropout, c.d_hidden, seed
    ).to(dev)
    task = CommonSpaceTask(model, c, xi_all.to(dev), xt_all.to(dev), pi.to(dev), seed, callback)
    loop.Trainer(max_epochs=c.epochs, device=dev, progress=progress, desc="epochs").fit(task)
    model.eval()
    return model, task.hist


@torch.no_grad()
def embed(
    model: CommonSpaceModel, image_features: Any, text_features: Any, batch_size: int = 1024, normalise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Common-space features of images and texts: ((n_images, d), (n_texts, d)) float32, L2-normalised.
    A branch with ``raw_input`` (the end-to-end model) takes its inputs as they are (pixels, token ids)."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for net, x in ((model.image, image_features), (model.text, text_features)):
        if getattr(net, "raw_input", False):
            x = torch.as_tensor(np.asarray(x))
        else:
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
            check_2d(x, "features", net.in_dim)
        z = (
            torch.cat([net(x[s : s + batch_size].to(dev)) for s in range(0, len(x), batch_size)])
            if len(x)
            else torch.zeros(0, net.out_dim)
        )
        if normalise:
            z = F.normalize(z, dim=1)
        out.append(z.cpu().numpy().astype(np.float32))
    return out[0], out[1]


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def cross_modal_relevance(pair_image: np.ndarray, n_images: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Relevance matrices of the caption protocol: an image's captions are relevant to it and vice versa.

    Args:
        pair_image: (n_texts,) index of each caption's image. n_images: default ``max + 1``.
    Returns:
        ``(rel_i2t (n_images, n_texts), rel_t2i (n_texts, n_images))`` boolean.
    """
    p = np.asarray(pair_image)
    if p.ndim != 1 or (p.size and p.min() < 0):
        raise ValueError(f"pair_image: expected a 1-D array of image indices >= 0, got shape {p.shape}")
    n = int(p.max()) + 1 if n_images is None else int(n_images)
    rel = np.arange(n)[:, None] == p[None, :]
    return rel, rel.T.copy()


def _check_scores(scores: Any, relevance: Any) -> tuple[np.ndarray, np.ndarray]:
    s, r = np.asarray(scores, dtype=np.float64), np.asarray(relevance).astype(bool)
    if s.ndim != 2:
        raise ValueError(f"scores: expected a 2-D array (n_queries, n_db), got shape {s.shape}")
    if r.shape != s.shape:
        raise ValueError(f"relevance: expected shape {s.shape} (as scores), got {r.shape}")
    return s, r


def _sorted_relevance(s: np.ndarray, r: np.ndarray) -> np.ndarray:
    order = np.argsort(-s, axis=1, kind="stable")  # ties: the lower index first
    return np.take_along_axis(r, order, axis=1)


def _hit_ranks(s: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 0-based rank of every relevant item in its query's ranking (scores descending, ties: the lower index
    first, as a stable sort), without sorting the rankings: rank = items scored higher + tied items before it.

    Returns ``(query, rank, m)`` per relevant item, ordered by query then rank; ``m`` counts the relevant items
    ranked before it in the same query (0 for the first hit). Work is O(relevant items × N), done in chunks."""
    q, j = np.nonzero(r)
    rank = np.empty(len(q), np.int64)
    cols = np.arange(s.shape[1])
    step = max(1, 2**22 // max(1, s.shape[1]))
    for a in range(0, len(q), step):  # chunks of relevant items (vectorised within a chunk)
        qq, jj = q[a : a + step], j[a : a + step]
        row, v = s[qq], s[qq, jj][:, None]
        rank[a : a + step] = (row > v).sum(1) + ((row == v) & (cols[None, :] < jj[:, None])).sum(1)
    order = np.lexsort((rank, q))
    q, rank = q[order], rank[order]
    first = np.searchsorted(q, q, side="left")  # where each query's hits start
    return q, rank, np.arange(len(q)) - first


def _ranked_metrics(s: np.ndarray, r: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """R@K (fraction of queries with a hit in the top K), the standard mAP and the thesis's "mAP" (fractions),
    over the queries with at least one relevant item, from :func:`_hit_ranks`: the values of
    ``retrieval.metrics.recall_at_k`` / ``mean_average_precision`` (ties by index) and
    :func:`thesis_map_excluding_hit`, with no full sort. Non-finite scores fall back to those functions."""
    if not np.isfinite(s).all():
        out = {f"R@{k}": v for k, v in recall_at_k(s, r, list(ks)).items()}
        return {**out, "mAP": mean_average_precision(s, r), "thesis_mAP": thesis_map_excluding_hit(s, r)}
    q, rank, m = _hit_ranks(s, r)
    n_rel = np.bincount(q, minlength=s.shape[0])
    keep = n_rel > 0
    nq = int(keep.sum())
    if nq == 0:
        return {**{f"R@{k}": float("nan") for k in ks}, "mAP": float("nan"), "thesis_mAP": float("nan")}
    best = np.full(s.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(best, q, rank)
    out = {f"R@{k}": float((best[keep] < k).sum() / nq) for k in ks}
    ap = np.bincount(q, weights=(m + 1) / (rank + 1), minlength=s.shape[0])
    out["mAP"] = float((ap[keep] / n_rel[keep]).mean())
    th = np.bincount(q, weights=np.where(rank == 0, 1.0, m / (rank + 1)), minlength=s.shape[0])
    out["thesis_mAP"] = float((th[keep] / n_rel[keep]).mean())
    return out


def thesis_map_excluding_hit(scores: Any, relevance: Any) -> float:
    """The chapter's "mAP" (CMPM's evaluation code): AP whose precision at a hit drops the hit itself.

    For the hit at 0-based rank ``p_j`` (the j-th relevant item, j = 0, 1, ...) the precision is
    ``(number of relevant items in the first max(1, p_j) results) / (p_j + 1)``: ``j / (p_j + 1)`` for
    ``p_j ≥ 1`` (the hit is not counted), ``1`` for ``p_0 = 0``. AP = Σ_j precision_j / R. With one relevant item
    the AP is 1 at rank 1 and 0 otherwise, so this "mAP" equals R@1 (why T→I mAP = R@1 in Tables 4.4/4.5).
    Use only to compare with the thesis; the standard mAP is :func:`retrieval_metrics`'s ``mAP``.

    Args:
        scores: (Q, N) similarities, higher first. relevance: (Q, N) bool.
    Returns:
        the mean over queries with at least one relevant item.
    """
    s, r = _check_scores(scores, relevance)
    rs = _sorted_relevance(s, r)
    pos = np.arange(rs.shape[1])[None, :]
    before = np.cumsum(rs, axis=1) - rs  # relevant items strictly before each position
    prec = np.where(pos == 0, 1.0, before / (pos + 1))
    n_rel = rs.sum(1)
    keep = n_rel > 0
    ap = (prec * rs).sum(1)[keep] / n_rel[keep]
    return float(ap.mean()) if ap.size else float("nan")


def retrieval_metrics(
    z_image: np.ndarray,
    z_text: np.ndarray,
    pair_image: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    thesis_map: bool = True,
    image_label: np.ndarray | None = None,
) -> dict[str, float]:
    """R@K both directions, standard mAP and (optionally) the thesis-compatible "mAP" (percentages, 0–100).

    Image→text: each image queries all captions (its own captions are relevant). Text→image: each caption
    queries all images (its image is relevant). Similarity: cosine (the inputs are L2-normalised by
    :func:`embed`; dot products are used as given).

    Args:
        z_image: (n_images, d); z_text: (n_texts, d); pair_image: (n_texts,) caption → image index.
        image_label: (n_images,) an identity per image (e.g. CUHK-PEDES's person ids): a caption is relevant to
            every image of its image's identity and vice versa; None: instance relevance (its own image).
    Recall@K for a K above the database size is left out.

    Returns:
        ``{"i2t/R@1", ..., "i2t/mAP", "i2t/thesis_mAP", "t2i/R@1", ..., "t2i/mAP", "t2i/thesis_mAP"}``.
    """
    zi, zt = np.asarray(z_image, dtype=np.float32), np.asarray(z_text, dtype=np.float32)
    if zi.ndim != 2 or zt.ndim != 2 or zi.shape[1] != zt.shape[1]:
        raise ValueError(f"z_image, z_text: expected (n_images, d) and (n_texts, d), got {zi.shape} and {zt.shape}")
    p = np.asarray(pair_image)
    if p.shape != (zt.shape[0],):
        raise ValueError(f"pair_image: expected shape ({zt.shape[0]},), got {p.shape}")
    if image_label is None:
        rel_i2t, rel_t2i = cross_modal_relevance(p, zi.shape[0])
    else:
        lab = np.asarray(image_label)
        if lab.shape != (zi.shape[0],):
            raise ValueError(f"image_label: expected shape ({zi.shape[0]},) (one identity per image), got {lab.shape}")
        rel_i2t = lab[:, None] == lab[p][None, :]
        rel_t2i = rel_i2t.T.copy()
    s = zi @ zt.T
    out: dict[str, float] = {}
    for name, sc, rel in (("i2t", s, rel_i2t), ("t2i", s.T, rel_t2i)):
        sc, rel = _check_scores(sc, rel)
        got = _ranked_metrics(np.ascontiguousarray(sc), rel, [k for k in ks if k <= sc.shape[1]])
        for k in [k for k in ks if k <= sc.shape[1]]:
            out[f"{name}/R@{k}"] = 100.0 * got[f"R@{k}"]
        out[f"{name}/mAP"] = 100.0 * got["mAP"]
        if thesis_map:
            out[f"{name}/thesis_mAP"] = 100.0 * got["thesis_mAP"]
    return out


def noise_stability(
    model: CommonSpaceModel,
    image_features: np.ndarray,
    text_features: np.ndarray,
    pair_image: np.ndarray,
    sigmas: Sequence[float],
    seed: int = 0,
    ks: Sequence[int] = (1, 5, 10),
    relative: bool = True,
) -> list[dict[str, float]]:
    """§4.5.3.6 / Table 4.7: R@K when Gaussian noise N(μ, σ²) is added to both inputs at test time.

    As in the thesis, μ is the mean of each modality's inputs; σ = 0 gives the no-noise row. The thesis's inputs
    are normalised pixels and word vectors (unit scale); ours are frozen features whose entries are much smaller
    (an L2-normalised 1280-d vector has entries ~0.03), so with ``relative=True`` (default) σ is in units of each
    modality's feature standard deviation; ``relative=False`` adds σ as printed.

    Returns:
        one dict per σ: ``{"sigma": σ, "i2t/R@1": ..., ...}``.
    """
    if getattr(model.image, "raw_input", False):  # end to end: noise on the normalised pixels and word vectors
        return _raw_noise_stability(model, image_features, text_features, pair_image, sigmas, seed, ks)
    xi, xt = np.asarray(image_features, np.float32), np.asarray(text_features, np.float32)
    rng = np.random.default_rng(seed)
    rows = []
    for sigma in sigmas:
        if not (isinstance(sigma, (int, float)) and sigma >= 0):
            raise ValueError(f"sigmas: expected numbers >= 0, got {sigma!r}")
        si, st = (xi.std(), xt.std()) if relative else (1.0, 1.0)
        ni = xi + (xi.mean() + sigma * si * rng.standard_normal(xi.shape)).astype(np.float32) if sigma else xi
        nt = xt + (xt.mean() + sigma * st * rng.standard_normal(xt.shape)).astype(np.float32) if sigma else xt
        zi, zt = embed(model, ni, nt)
        m = retrieval_metrics(zi, zt, pair_image, ks, thesis_map=False)
        rows.append({"sigma": float(sigma), **{k: v for k, v in m.items() if "/R@" in k}})
    return rows


def _raw_noise_stability(model, images, tokens, pair_image, sigmas, seed, ks) -> list[dict[str, float]]:
    """:func:`noise_stability` of an end-to-end model: N(μ, σ²) on the normalised pixels and the word vectors
    (σ as printed: both are about unit scale, as in the thesis)."""
    rows = []
    for sigma in sigmas:
        if not (isinstance(sigma, (int, float)) and sigma >= 0):
            raise ValueError(f"sigmas: expected numbers >= 0, got {sigma!r}")
        torch.manual_seed(seed)
        model.image.noise_sigma = model.text.noise_sigma = float(sigma)
        try:
            zi, zt = embed(model, images, tokens)
        finally:
            model.image.noise_sigma = model.text.noise_sigma = 0.0
        m = retrieval_metrics(zi, zt, pair_image, ks, thesis_map=False)
        rows.append({"sigma": float(sigma), **{k: v for k, v in m.items() if "/R@" in k}})
    return rows


def complexity(
    model: CommonSpaceModel, image_features: np.ndarray, text_features: np.ndarray, repeats: int = 3
) -> dict[str, float]:
    """§4.5.3.6 / Table 4.6 for the trainable heads: parameters (M), forward FLOPs per image–text pair
    (2 · in · out per linear layer) and the measured embedding time per pair (ms, best of ``repeats``)."""
    n_params = sum(p.numel() for net in (model.image, model.text) for p in net.parameters())
    flops = sum(
        2 * m.in_features * m.out_features
        for net in (model.image, model.text)
        for m in net.modules()
        if isinstance(m, nn.Linear)
    )
    n = min(len(image_features), len(text_features))
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        embed(model, np.asarray(image_features)[:n], np.asarray(text_features)[:n])
        best = min(best, time.perf_counter() - t0)
    return {"params_M": n_params / 1e6, "flops_per_pair": float(flops), "ms_per_pair": 1e3 * best / max(n, 1)}


# ---------------------------------------------------------------------------------------------------------------
# offline data: an instance-level caption benchmark from easy-vqa shapes


def shape_image_features(bench: ShapeCaptions, size: int = 128, device: str = "auto") -> np.ndarray:
    """Frozen EfficientNet-Lite0 features (1280-d, pooled, centred, L2-normalised) of the benchmark's images,
    cached on disk by the easy-vqa ids (:func:`xmr_lib.encoders.features.image_features`). Returns (n, 1280) float32."""
    import hashlib

    src = np.asarray(bench.source)
    key = (
        {"dataset": "easy_vqa_all_5000"}
        if np.array_equal(src, np.arange(5000))
        else {"dataset": "easy_vqa", "ids": hashlib.sha1(src.astype(np.int64).tobytes()).hexdigest()[:16]}
    )
    return image_features(bench.images, size=size, cache_key=key, device=resolve_device(device), progress=False)


def caption_features(
    captions: Sequence[str], encoder: str = "minilm", fit_captions: Sequence[str] | None = None
) -> np.ndarray:
    """Text features of captions: ``"minilm"`` (384-d sentence embeddings, cached) or ``"bow"`` (word counts
    over the vocabulary of ``fit_captions``, default ``captions``). Returns (n, D) float32."""

    if encoder == "minilm":
        return np.asarray(_text.encode(list(captions), progress=False), dtype=np.float32)
    if encoder == "bow":
        _, vocab = _text.bag_of_words(list(fit_captions if fit_captions is not None else captions))
        x, _ = _text.bag_of_words(list(captions), vocab=vocab)
        return x
    raise ValueError(f"encoder: expected 'minilm' or 'bow', got {encoder!r}")


# ---------------------------------------------------------------------------------------------------------------
# experiment helpers (keep the notebook thin)


@dataclass
class CaptionSplit:
    """Train / test features of a caption benchmark: one image row per image, one text row per caption."""

    train_image: np.ndarray  # (n_train, Di)
    train_text: np.ndarray  # (n_train_captions, Dt)
    train_pair: np.ndarray  # (n_train_captions,) index into train_image
    test_image: np.ndarray
    test_text: np.ndarray
    test_pair: np.ndarray
    test_index: np.ndarray  # (n_test,) image indices of the test images in the benchmark
    test_caption_index: np.ndarray  # (n_test_captions,) caption indices in the benchmark
    # (n_test,) an identity per test image (CUHK-PEDES's person ids): a caption is then relevant to every image of
    # its image's identity (Table 4.2's protocol); None: to its own image only
    test_image_label: np.ndarray | None = None


def split_benchmark(
    image_features: np.ndarray,
    text_features: np.ndarray,
    pair_image: np.ndarray,
    n_train: int,
    n_test: int,
    seed: int = 0,
) -> CaptionSplit:
    """Split a caption benchmark by image (all captions of an image on one side), seeded.

    Args:
        image_features: (n_images, Di); text_features: (n_captions, Dt); pair_image: (n_captions,).
        n_train, n_test: images per side (n_train + n_test ≤ n_images).
    """
    xi, xt, p = np.asarray(image_features), np.asarray(text_features), np.asarray(pair_image)
    if xi.ndim != 2 or xt.ndim != 2 or p.shape != (len(xt),):
        raise ValueError(
            f"image_features, text_features, pair_image: expected (n, Di), (m, Dt), (m,), got "
            f"{xi.shape}, {xt.shape}, {p.shape}"
        )
    if n_train < 2 or n_test < 2 or n_train + n_test > len(xi):
        raise ValueError(
            f"n_train, n_test: expected >= 2 each and n_train + n_test <= {len(xi)}, got {n_train}, {n_test}"
        )
    perm = np.random.default_rng(seed).permutation(len(xi))
    tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_test])
    out = []
    for idx in (tr, te):
        remap = -np.ones(len(xi), dtype=np.int64)
        remap[idx] = np.arange(len(idx))
        rows = np.nonzero(remap[p] >= 0)[0]
        out.append((xi[idx], xt[rows], remap[p[rows]], rows))
    return CaptionSplit(out[0][0], out[0][1], out[0][2], out[1][0], out[1][1], out[1][2], te, out[1][3])


def _train_one(
    split: CaptionSplit, cfg: CommonSpaceConfig, name: str, seed: int, device: str, checkpoint: Any, engine: Any
) -> dict[str, Any]:
    """One (configuration, seed) run of :func:`run_configs`: trained (or reloaded from ``checkpoint``) and
    evaluated on the test split. Returns ``{"metrics", "history", "model" (on the CPU), "probe", "seconds"}``."""
    t0 = time.time()
    step = f"{name}_seed{seed}".replace("=", "").replace(" ", "_")
    saved = checkpoint.load(step) if checkpoint is not None else None
    if saved is not None and engine is not None:
        model = engine.build(split, cfg, seed)
        model.load_state_dict(saved["model"])
        model.eval()
        hist = TrainHistory(saved["history"])
    elif saved is not None:
        model = CommonSpaceModel(
            split.train_image.shape[1],
            split.train_text.shape[1],
            len(split.train_image),
            cfg.dim,
            cfg.hidden,
            cfg.dropout,
            cfg.d_hidden,
            seed,
        )
        model.load_state_dict(saved["model"])
        model.eval()
        hist = TrainHistory(saved["history"])
    else:
        model, hist = (
            engine.train(split, cfg, seed, device)
            if engine is not None
            else train_common_space(
                split.train_image, split.train_text, split.train_pair, cfg, seed=seed, device=device
            )
        )
        if checkpoint is not None:
            checkpoint.save(
                step,
                {
                    "model": {k: v.cpu() for k, v in model.state_dict().items()},
                    "history": hist.epochs,
                    "config": asdict(cfg),
                },
            )
    zi, zt = embed(model, split.test_image, split.test_text)
    return {
        "metrics": retrieval_metrics(zi, zt, split.test_pair, image_label=split.test_image_label),
        "history": hist,
        "model": model.cpu(),
        "probe": modality_probe_accuracy(zi, zt, seed=seed),
        "seconds": time.time() - t0,
    }


def run_configs(
    split: CaptionSplit,
    base: CommonSpaceConfig,
    names: Sequence[str],
    seeds: Sequence[int],
    overrides: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
    progress: bool = True,
    checkpoint: Any = None,
    engine: Any = None,
    workers: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Train every named configuration (an :data:`ABLATIONS` key, or a key of ``overrides``) for every seed.

    ``checkpoint``: a :class:`xmr_lib.core.checkpoint.Checkpoint`; every finished (configuration, seed) run is saved as
    ``"<name>_seed<seed>"`` and reloaded instead of retrained when the notebook is run again (long full runs).
    ``engine``: None (frozen features, :func:`train_common_space`) or an object with ``train(split, cfg, seed,
    device)`` and ``build(split, cfg, seed)`` (:data:`xmr_lib.chapters.ch04.endtoend.ENGINE`: pixels and tokens).
    ``workers``: processes for the runs (:func:`xmr_lib.core.parallel.map_jobs`; default
    :func:`~xmr_lib.core.parallel.cpu_workers`: one per core on the CPU at one torch thread each, 1 on a GPU or
    with ``XMR_WORKERS=1``). The runs are independent and each computes the same numbers in any process, so the
    results do not depend on ``workers``.

    Returns:
        ``{name: {"metrics": {metric: [per-seed values]}, "history": [TrainHistory per seed],
        "models": [model per seed], "probe": [fresh-probe accuracy per seed], "seconds": [...]}}``.
    """
    from tqdm.auto import tqdm

    overrides = overrides or {}
    cfgs = {n: replace(base, **overrides[n]) if n in overrides else ablation_config(base, n) for n in names}
    jobs = [(split, cfgs[n], n, s, device, checkpoint, engine) for n in names for s in seeds]
    workers = parallel.cpu_workers(device, len(jobs)) if workers is None else int(workers)
    if workers == 1:
        runs = [_train_one(*j) for j in tqdm(jobs, desc="training runs", disable=not progress)]
    else:
        runs = parallel.map_jobs(_train_one, jobs, workers)
    out: dict[str, dict[str, Any]] = {}
    for (_, _, name, _, _, _, _), run in zip(jobs, runs):
        r = out.setdefault(name, {"metrics": {}, "history": [], "models": [], "probe": [], "seconds": []})
        for k, v in run["metrics"].items():
            r["metrics"].setdefault(k, []).append(v)
        for k in ("d_entropy", "d_accuracy"):
            r["metrics"].setdefault(f"final_{k}", []).append(run["history"].epochs[-1][k])
        r["history"].append(run["history"])
        r["models"].append(run["model"])
        r["probe"].append(run["probe"])
        r["seconds"].append(run["seconds"])
    return out
