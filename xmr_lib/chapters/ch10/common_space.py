"""Common-space learning for image–text retrieval: the enhanced isomorphic semantic representation of Liu et al.
(ICME 2017) and the other common-space objectives of thesis chapter 8 (§8.3.3).

The network (:class:`IsomorphicNet`, ICME 2017 §2 and §3.2):

- the **image sub-network** I_Net: two hidden FC layers (AlexNet's fc6/fc7; here on frozen or raw image
  features) then the inserted **latent layer I_fc** (``hidden → l``) and the last layer (``l → c``);
- the **text sub-network** T_Net: three FC layers ``input → hidden → l (T_fc) → c``;
- the last layer ``W`` (latent space → c-dim semantic space) **shared** by both sub-networks.

``mode`` gives the three rows of Table 2: ``"O"`` (the original network of Deep-SM: no latent layer, separate
last layers), ``"O-LE"`` (with the latent layers, separate last layers), ``"O-LE-J"`` (latent layers + joint W,
the paper's method). ``share="latent+head"`` also shares I_fc/T_fc (the abstract's wording; Eq. 2 shares only W).

Objectives (all on the same features and split, see :func:`train_common_space_model`):

- ``"semantic"``: :func:`semantic_matching_loss`, Eq. (1)/(2) ``Σ_i ‖softmax(Wφ(x_i)) − y_i‖² +
  ‖softmax(Wφ(t_i)) − y_i‖²``; retrieval compares the softmax vectors by Euclidean distance;
- ``"triplet"``: the bi-directional (inter + intra) hinge ranking loss of :mod:`xmr_lib.chapters.ch04.adversarial`
  (:func:`~xmr_lib.retrieval.losses.bidirectional_triplet_loss`, class labels as positives) on the latent φ;
- ``"adversarial"``: Eq. (2) plus a modality classifier D (:class:`~xmr_lib.retrieval.modality.ModalityClassifier`)
  trained on φ through a gradient-reversal layer (ACMR-style; the encoders make φ modality-invariant);
- CCA (:class:`CCABaseline`), the classic unsupervised baseline.

Evaluation (ICME 2017 §3.1, Eq. 3): :func:`cross_modal_map` ranks the whole test database by Euclidean distance
and computes full-list mAP with relevance = "shares at least one label", through :mod:`xmr_lib.retrieval.metrics`.

Offline data (:func:`fashion_wiki_pairs`): Fashion-MNIST images paired with Wikipedia-style documents drawn
from a class → word model (class words, words of the coarse group, background words, a per-document signal
share), featurised as LDA topics (the paper's text feature) or MiniLM sentence embeddings.

Paper data (the ``full`` profile, :func:`load_feature_pairs`): ``<root>/<name>/isomorphic_features.npz`` when given
(e.g. the paper's AlexNet fc7 + LDA features), else, for Wikipedia and Pascal Sentence, features built from the
converted layout of ``python -m data_scripts fetch NAME --root DIR`` by :func:`converted_feature_pairs`
(EfficientNet-Lite0 image features, LDA / tf-idf / MiniLM texts; the paper's splits; cached).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core.cache import cached
from xmr_lib.core.checks import check_2d, check_int, check_matrix
from xmr_lib.core.setup import resolve_device
from xmr_lib.data import registry as data
from xmr_lib.data.registry import FASHION_COARSE, converted_available
from xmr_lib.encoders import text
from xmr_lib.encoders.features import image_features
from xmr_lib.encoders.text import bag_of_words
from xmr_lib.retrieval.losses import bidirectional_triplet_loss
from xmr_lib.retrieval.metrics import hamming_relevance, mean_average_precision
from xmr_lib.retrieval.modality import ModalityClassifier, grad_reverse, modality_classification_loss
from xmr_lib.train import loop

__all__ = [
    "MODES",
    "OBJECTIVES",
    "label_targets",
    "semantic_matching_loss",
    "ranking_loss",
    "IsomorphicNet",
    "CommonSpaceTrainConfig",
    "train_common_space_model",
    "represent",
    "euclidean_distances",
    "cross_modal_map",
    "pair_consistency",
    "CCABaseline",
    "CrossModalSplit",
    "FASHION_WORDS",
    "synthetic_documents",
    "lda_features",
    "fashion_wiki_pairs",
    "load_feature_pairs",
    "converted_feature_pairs",
    "CONVERTED_PAPER_DATASETS",
    "run_isomorphic",
    "run_cca",
]

MODES = ("O", "O-LE", "O-LE-J")
OBJECTIVES = ("semantic", "triplet", "adversarial")


# ---------------------------------------------------------------------------------------------------------------
# helpers


# ---------------------------------------------------------------------------------------------------------------
# the objective of Eq. (1)/(2)


def label_targets(labels: Any, n_classes: int) -> torch.Tensor:
    """The label vectors ``y_i`` of Eq. (2) as float targets for a softmax output.

    Args:
        labels: (N,) integer class ids → one-hot; or (N, c) multi-hot → ``y / ‖y‖₁`` (the paper does not say how
            a softmax meets a multi-hot target on VOC; the normalised vector is the reachable one).
        n_classes: c.
    Returns:
        (N, c) float32 tensor whose rows sum to 1 (an all-zero multi-hot row stays zero).
    """
    c = check_int(n_classes, "n_classes", 2)
    y = torch.as_tensor(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels))
    if y.ndim == 1:
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"labels: (N,) labels must be integer class ids, got dtype {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= c):
            raise ValueError(f"labels: class ids must lie in [0, {c}), got [{int(y.min())}, {int(y.max())}]")
        return F.one_hot(y.long(), c).float()
    if y.ndim == 2:
        if y.shape[1] != c:
            raise ValueError(f"labels: expected (N, {c}) multi-hot labels, got shape {tuple(y.shape)}")
        y = (y > 0).float()
        return y / y.sum(1, keepdim=True).clamp(min=1.0)
    raise ValueError(f"labels: expected (N,) class ids or (N, c) multi-hot labels, got shape {tuple(y.shape)}")


def semantic_matching_loss(p_image: torch.Tensor, p_text: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. (2) (and Eq. (1)): ``(1/N) Σ_i ‖p^I_i − y_i‖² + ‖p^T_i − y_i‖²``.

    ``p^I_i = softmax(W φ(x_i))`` and ``p^T_i = softmax(W φ(t_i))`` are the semantic representations; whether W is
    shared (Eq. 2) or not (Eq. 1) is a property of the network, not of the loss. The paper sums over the n pairs;
    we average over the batch (a constant factor, absorbed by the learning rate).

    Args:
        p_image, p_text: (N, c) probability vectors of paired images and texts.
        targets: (N, c) label vectors (:func:`label_targets`).
    Returns:
        scalar ≥ 0 (at most 4: two squared distances between points of the simplex).
    """
    for name, t in (("p_image", p_image), ("p_text", p_text), ("targets", targets)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected a 2-D tensor (N, c), got {got}")
    if p_text.shape != p_image.shape or targets.shape != p_image.shape:
        raise ValueError(
            f"p_text, targets: expected the shape of p_image {tuple(p_image.shape)}, got "
            f"{tuple(p_text.shape)} and {tuple(targets.shape)}"
        )
    return ((p_image - targets).pow(2).sum(1) + (p_text - targets).pow(2).sum(1)).mean()


def ranking_loss(
    z_image: torch.Tensor, z_text: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, mining: str = "all"
) -> torch.Tensor:
    """The verification-based objective of thesis §8.3.3: a bi-directional (image→text, text→image) plus intra-modal
    triplet hinge loss on cosine similarities, positives = same class label. A thin call of notebook 04's
    :func:`xmr_lib.retrieval.losses.bidirectional_triplet_loss` (its "instance labels" are our class labels).

    Args:
        z_image, z_text: (N, d) paired latent features. labels: (N,) int64 class ids.
        margin: hinge margin. mining: ``"all"`` violating negatives or ``"hardest"`` (VSE++).
    Returns:
        scalar ≥ 0.
    """
    return bidirectional_triplet_loss(z_image, z_text, labels, margin, mining, True)


# ---------------------------------------------------------------------------------------------------------------
# the network


def _fc(i: int, o: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(i, o), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return layers


class IsomorphicNet(nn.Module):
    """I_Net and T_Net of the ICME 2017 paper (Fig. 1), in the three variants of Table 2.

    ``mode="O"``: image ``in → h → h → c``, text ``in → h → h → c`` (Deep-SM's networks, separate last layers).
    ``mode="O-LE"``: image ``in → h → h → l (I_fc) → c``, text ``in → h → l (T_fc) → c`` (separate last layers).
    ``mode="O-LE-J"``: as O-LE, with **one** last layer ``W: l → c`` for both (Eq. 2).
    ``share="latent+head"`` (LE modes only) also uses one latent layer for I_fc and T_fc.

    Hidden layers: Linear → ReLU → Dropout(``dropout``) ("Drop out and ReLU are added likewise", §3.2); the
    latent layer: Linear → ReLU (dropout ``latent_dropout``, default none). ``init_std``: the paper's
    N(0, 0.01²) initialisation of new layers (``None``, default: PyTorch's, which trains small MLPs from
    scratch more reliably).

    Args:
        image_dim, text_dim: input feature sizes. n_classes: c. hidden: h (4096 in the paper). latent: l.
        seed: initialisation.
    """

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        n_classes: int,
        hidden: int = 256,
        latent: int = 64,
        mode: str = "O-LE-J",
        share: str = "head",
        dropout: float = 0.5,
        latent_dropout: float = 0.0,
        init_std: float | None = None,
        seed: int = 0,
    ):
        super().__init__()
        for name, v in (("image_dim", image_dim), ("text_dim", text_dim), ("hidden", hidden), ("latent", latent)):
            check_int(v, name)
        check_int(n_classes, "n_classes", 2)
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if share not in ("head", "latent+head"):
            raise ValueError(f"share: expected 'head' or 'latent+head', got {share!r}")
        if share == "latent+head" and mode != "O-LE-J":
            raise ValueError(f"share: 'latent+head' needs mode='O-LE-J', got mode={mode!r}")
        if not 0 <= dropout < 1 or not 0 <= latent_dropout < 1:
            raise ValueError(f"dropout, latent_dropout: expected values in [0, 1), got {dropout!r}, {latent_dropout!r}")
        torch.manual_seed(seed)
        self.mode, self.share = mode, share
        self.image_dim, self.text_dim, self.n_classes = image_dim, text_dim, n_classes
        self.image_body = nn.Sequential(*_fc(image_dim, hidden, dropout), *_fc(hidden, hidden, dropout))  # fc6, fc7
        self.text_body = nn.Sequential(*_fc(text_dim, hidden, dropout))  # T_Net fc1
        if mode == "O":
            self.image_latent_layer = nn.Identity()
            self.text_latent_layer = nn.Sequential(*_fc(hidden, hidden, dropout))  # Deep-SM's third text layer
            self.latent_dim = hidden
        else:
            self.image_latent_layer = nn.Sequential(*_fc(hidden, latent, latent_dropout))  # I_fc
            self.text_latent_layer = (
                self.image_latent_layer
                if share == "latent+head"
                else nn.Sequential(*_fc(hidden, latent, latent_dropout))
            )  # T_fc
            self.latent_dim = latent
        self.image_head = nn.Linear(self.latent_dim, n_classes)
        self.text_head = self.image_head if mode == "O-LE-J" else nn.Linear(self.latent_dim, n_classes)  # W
        if init_std is not None:
            g = torch.Generator().manual_seed(seed)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    with torch.no_grad():
                        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * float(init_std))
                        m.bias.zero_()

    def image_latent(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x): (N, image_dim) → (N, latent_dim) (fc7 output for mode O)."""
        check_2d(x, "x_image", self.image_dim)
        return self.image_latent_layer(self.image_body(x))

    def text_latent(self, t: torch.Tensor) -> torch.Tensor:
        """φ(t): (N, text_dim) → (N, latent_dim)."""
        check_2d(t, "x_text", self.text_dim)
        return self.text_latent_layer(self.text_body(t))

    def forward(self, x_image: torch.Tensor, x_text: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both sub-networks: ``{"latent_image", "latent_text", "logits_image", "logits_text"}``;
        the semantic representations are ``softmax(logits)`` (N, c)."""
        zi, zt = self.image_latent(x_image), self.text_latent(x_text)
        return {
            "latent_image": zi,
            "latent_text": zt,
            "logits_image": self.image_head(zi),
            "logits_text": self.text_head(zt),
        }

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------------------------------------------
# training


@dataclass
class CommonSpaceTrainConfig:
    """Every knob of one common-space training run (paper defaults in comments; ours suit a CPU and MLPs).

    ``objective``: ``"semantic"`` (Eq. 2), ``"triplet"`` (ranking, on φ) or ``"adversarial"`` (Eq. 2 + modality
    classifier through gradient reversal, weight ``w_adv``, ACMR's schedule ``λ_p = 2/(1 + e^{−10p}) − 1``).
    Schedule: ``iterations`` mini-batches of ``batch_size`` pairs (paper: 300–2000 of 256), learning rate divided
    by 10 at ``lr_drop`` of the run (paper: half). ``optimizer``: ``"adam"`` (default) or ``"sgd"`` (momentum
    0.9, the paper's Caffe recipe with lr 0.01).
    """

    mode: str = "O-LE-J"
    share: str = "head"
    hidden: int = 256
    latent: int = 64
    dropout: float = 0.5
    latent_dropout: float = 0.0
    init_std: float | None = None
    objective: str = "semantic"
    margin: float = 0.2
    mining: str = "all"
    w_adv: float = 0.5
    d_hidden: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    iterations: int = 600
    batch_size: int = 256
    lr_drop: float = 0.5

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {self.objective!r}")
        if self.mining not in ("all", "hardest"):
            raise ValueError(f"mining: expected 'all' or 'hardest', got {self.mining!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {self.optimizer!r}")
        if self.objective != "semantic" and self.mode == "O":
            raise ValueError(
                f"mode: the {self.objective!r} objective acts on the latent layer; use 'O-LE' or "
                f"'O-LE-J', got {self.mode!r}"
            )
        for k in ("iterations", "batch_size", "hidden", "latent"):
            check_int(getattr(self, k), k)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr: expected a number > 0, got {self.lr!r}")
        if not 0 < self.lr_drop <= 1:
            raise ValueError(f"lr_drop: expected a fraction in (0, 1], got {self.lr_drop!r}")


class CommonSpaceTrainTask(loop.Task):
    """The training of :func:`train_common_space_model` as a :class:`xmr_lib.train.loop.Task` (step mode): batches
    of pairs from an endless stream of shuffled passes, one objective, the learning rate divided by 10 at
    ``lr_drop × iterations``; with the adversarial objective a modality classifier ``disc`` behind a gradient
    reversal whose coefficient ramps up over the run. ``hist`` holds ``{"loss": [...], "adv": [...]}`` per step.

    Args:
        model: the :class:`IsomorphicNet`, on ``device``. config: :class:`CommonSpaceTrainConfig`.
        xi, xt: (n, Di), (n, Dt) float32 features; lab: (n,) class ids or (n, c) multi-hot; n_classes: c.
        seed: seeds the batch order. device: a ``torch.device``.
    """

    def __init__(self, model, config, xi, xt, lab, n_classes: int, seed: int, device: torch.device):
        c = self.c = config
        self.model, self.device = model, device
        params = list(model.parameters())
        self.disc = None
        if c.objective == "adversarial":
            self.disc = ModalityClassifier(model.latent_dim, c.d_hidden).to(device)
            params += list(self.disc.parameters())
        self.opt = (
            torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
            if c.optimizer == "adam"
            else torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
        )
        self.drop_at = max(1, int(round(c.lr_drop * c.iterations)))
        self.Xi, self.Xt = torch.from_numpy(xi).to(device), torch.from_numpy(xt).to(device)
        self.Y = label_targets(lab, n_classes).to(device)
        self.Yid = torch.as_tensor(lab, dtype=torch.long, device=device) if lab.ndim == 1 else None
        self.g = torch.Generator().manual_seed(seed)
        self.n, self.bs = len(xi), min(c.batch_size, len(xi))
        self.hist: dict[str, list[float]] = {"loss": [], "adv": []}
        model.train()

    def batches(self, trainer: loop.Trainer, epoch: int):
        # one endless stream: batches cycle through shuffled passes over the pairs (a short rest is skipped)
        n, bs, g = self.n, self.bs, self.g
        order, pos = torch.randperm(n, generator=g), 0
        while True:
            if pos + bs > n:
                order, pos = torch.randperm(n, generator=g), 0
            yield order[pos : pos + bs].to(self.device)
            pos += bs

    def on_step_start(self, trainer: loop.Trainer, idx: torch.Tensor) -> None:
        if trainer.global_step == self.drop_at:
            for pg in self.opt.param_groups:
                pg["lr"] = pg["lr"] / 10

    def training_step(self, trainer: loop.Trainer, idx: torch.Tensor) -> torch.Tensor:
        c, disc = self.c, self.disc
        out = self.model(self.Xi[idx], self.Xt[idx])
        if c.objective == "triplet":
            loss = ranking_loss(out["latent_image"], out["latent_text"], self.Yid[idx], c.margin, c.mining)
        else:
            loss = semantic_matching_loss(out["logits_image"].softmax(1), out["logits_text"].softmax(1), self.Y[idx])
        if disc is not None:
            p = trainer.global_step / max(c.iterations - 1, 1)
            lam = 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0
            # D sees the direction of φ (L2-normalised): with ReLU latents, "φ = 0" would otherwise be an easy way
            # to fool it (the image branch collapses to dead units)
            adv = modality_classification_loss(
                disc(grad_reverse(F.normalize(out["latent_image"], dim=1), lam)),
                disc(grad_reverse(F.normalize(out["latent_text"], dim=1), lam)),
            )
            loss = loss + c.w_adv * adv
            self.hist["adv"].append(float(adv.detach()))
        return loss

    def optimizers(self, trainer: loop.Trainer, idx: torch.Tensor) -> list:
        return [self.opt]

    def on_step_end(self, trainer: loop.Trainer, idx: torch.Tensor, loss: torch.Tensor) -> None:
        self.hist["loss"].append(float(loss.detach()))


def train_common_space_model(
    image_features: Any,
    text_features: Any,
    labels: Any,
    config: CommonSpaceTrainConfig | None = None,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[IsomorphicNet, dict[str, list[float]]]:
    """Train :class:`IsomorphicNet` on paired features with one of the objectives.

    Args:
        image_features: (n, Di); text_features: (n, Dt), row i of each is the pair i.
        labels: (n,) class ids or (n, c) multi-hot.
        config: :class:`CommonSpaceTrainConfig`. seed: initialisation, batches and dropout.
        device: ``"cpu"`` / ``"cuda"`` / ``"auto"``.
    Returns:
        ``(model, history)``, model in eval mode; history ``{"loss": [...], "adv": [...]}`` per iteration
        (``"adv"``: D's modality cross-entropy, adversarial objective only).
    """
    c = config or CommonSpaceTrainConfig()
    xi = check_matrix(image_features, "image_features", dtype=np.float32)
    xt = check_matrix(text_features, "text_features", dtype=np.float32)
    if len(xt) != len(xi):
        raise ValueError(f"text_features: expected {len(xi)} rows (one per image), got shape {xt.shape}")
    lab = np.asarray(labels)
    if lab.shape[0] != len(xi) or lab.ndim not in (1, 2):
        raise ValueError(f"labels: expected ({len(xi)},) or ({len(xi)}, c), got shape {lab.shape}")
    n_classes = int(lab.max()) + 1 if lab.ndim == 1 else lab.shape[1]
    n_classes = max(n_classes, 2)
    if c.objective == "triplet" and lab.ndim != 1:
        raise ValueError(f"labels: the triplet objective needs (n,) class ids, got shape {lab.shape}")
    dev = torch.device(resolve_device(device))
    torch.manual_seed(seed)
    model = IsomorphicNet(
        xi.shape[1],
        xt.shape[1],
        n_classes,
        c.hidden,
        c.latent,
        c.mode,
        c.share,
        c.dropout,
        c.latent_dropout,
        c.init_std,
        seed,
    ).to(dev)
    task = CommonSpaceTrainTask(model, c, xi, xt, lab, n_classes, seed, dev)
    loop.Trainer(max_steps=c.iterations, device=dev, progress=progress, desc=f"{c.objective} {c.mode}").fit(task)
    model.eval()
    return model, task.hist


@torch.no_grad()
def represent(
    model: IsomorphicNet, image_features: Any, text_features: Any, space: str = "semantic", batch_size: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Representations for retrieval: ``space="semantic"`` → softmax vectors (n, c) (the paper's isomorphic
    semantic representation); ``"latent"`` → L2-normalised φ (n, l) (what the ranking objective shapes).

    Returns:
        ``(images (n_i, d), texts (n_t, d))`` float32.
    """
    if space not in ("semantic", "latent"):
        raise ValueError(f"space: expected 'semantic' or 'latent', got {space!r}")
    model.eval()
    dev = next(model.parameters()).device
    outs = []
    for x, lat, head, name in (
        (image_features, model.image_latent, model.image_head, "image_features"),
        (text_features, model.text_latent, model.text_head, "text_features"),
    ):
        a = torch.from_numpy(check_matrix(x, name, dtype=np.float32))
        parts = []
        for s in range(0, len(a), batch_size):
            z = lat(a[s : s + batch_size].to(dev))
            parts.append(head(z).softmax(1) if space == "semantic" else F.normalize(z, dim=1))
        outs.append(torch.cat(parts).cpu().numpy() if parts else np.zeros((0, model.n_classes), np.float32))
    return outs[0], outs[1]


# ---------------------------------------------------------------------------------------------------------------
# evaluation (Eq. 3)


def euclidean_distances(queries: Any, database: Any) -> np.ndarray:
    """(Q, d), (N, d) → (Q, N) float64 Euclidean distances, ``sqrt(max(‖q‖² + ‖x‖² − 2 q·x, 0))``."""
    q = check_matrix(queries, "queries", dtype=np.float32).astype(np.float64)
    x = check_matrix(database, "database", dtype=np.float32).astype(np.float64)
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"database: expected {q.shape[1]} columns like queries, got shape {x.shape}")
    d2 = (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * q @ x.T
    return np.sqrt(np.maximum(d2, 0.0))


def cross_modal_map(
    image_repr: Any, text_repr: Any, image_labels: Any, text_labels: Any | None = None, metric: str = "euclidean"
) -> dict[str, float]:
    """Seed 004's evaluation: every image queries all texts (i→t) and every text all images (t→i); the whole
    database is ranked by ``metric`` (``"euclidean"``, the paper's; or ``"cosine"``); a result is relevant when
    it shares at least one label with the query; AP is Eq. (3) over the full list
    (:func:`xmr_lib.retrieval.metrics.mean_average_precision`, ties in database order).

    Args:
        image_repr: (n_i, d); text_repr: (n_t, d) in the same space.
        image_labels: (n_i,) ids or (n_i, c) multi-hot; text_labels: likewise for texts (default: image_labels).
    Returns:
        ``{"i2t": mAP, "t2i": mAP, "average": mean of the two}`` in [0, 1].
    """
    zi, zt = (
        check_matrix(image_repr, "image_repr", dtype=np.float32),
        check_matrix(text_repr, "text_repr", dtype=np.float32),
    )
    if zi.shape[1] != zt.shape[1]:
        raise ValueError(f"text_repr: expected {zi.shape[1]} columns like image_repr, got shape {zt.shape}")
    li = np.asarray(image_labels)
    lt = li if text_labels is None else np.asarray(text_labels)
    if li.shape[0] != len(zi) or lt.shape[0] != len(zt):
        raise ValueError(
            f"image_labels, text_labels: expected {len(zi)} and {len(zt)} rows, got shapes {li.shape} and {lt.shape}"
        )
    if metric == "euclidean":
        s = -euclidean_distances(zi, zt)
    elif metric == "cosine":
        a = zi / np.maximum(np.linalg.norm(zi, axis=1, keepdims=True), 1e-12)
        b = zt / np.maximum(np.linalg.norm(zt, axis=1, keepdims=True), 1e-12)
        s = a.astype(np.float64) @ b.T.astype(np.float64)
    else:
        raise ValueError(f"metric: expected 'euclidean' or 'cosine', got {metric!r}")
    rel = hamming_relevance(li, lt)
    i2t = mean_average_precision(s, rel)
    t2i = mean_average_precision(s.T, rel.T)
    return {"i2t": float(i2t), "t2i": float(t2i), "average": float((i2t + t2i) / 2)}


def pair_consistency(image_repr: Any, text_repr: Any) -> float:
    """Mean Euclidean distance between the representations of paired images and texts (row i ↔ row i):
    the "consistency of semantic representations" the shared W is meant to improve (ICME 2017 §2.3)."""
    zi, zt = (
        check_matrix(image_repr, "image_repr", dtype=np.float32),
        check_matrix(text_repr, "text_repr", dtype=np.float32),
    )
    if zi.shape != zt.shape:
        raise ValueError(f"text_repr: expected the shape of image_repr {zi.shape}, got {zt.shape}")
    return float(np.linalg.norm(zi.astype(np.float64) - zt, axis=1).mean()) if len(zi) else float("nan")


# ---------------------------------------------------------------------------------------------------------------
# CCA baseline


class CCABaseline:
    """Classic CCA common space (Hotelling; the "CCA" column of Table 3): sklearn's ``CCA`` on standardised
    inputs, each first reduced by PCA to ``pca_dim`` components (sklearn's NIPALS is slow and unstable on
    hundreds of collinear dimensions). Unsupervised: it uses the pairing, not the labels.

    Args:
        n_components: common-space dimension. pca_dim: PCA size per modality (``None``: no PCA).
    """

    def __init__(self, n_components: int = 10, pca_dim: int | None = 32, max_iter: int = 500, seed: int = 0):
        self.n_components = check_int(n_components, "n_components")
        self.pca_dim = None if pca_dim is None else check_int(pca_dim, "pca_dim")
        self.max_iter, self.seed = max_iter, seed

    def fit(self, image_features: Any, text_features: Any) -> "CCABaseline":
        """(n, Di), (n, Dt) paired rows."""
        from sklearn.cross_decomposition import CCA
        from sklearn.decomposition import PCA

        xi, xt = (
            check_matrix(image_features, "image_features", dtype=np.float32),
            check_matrix(text_features, "text_features", dtype=np.float32),
        )
        if len(xi) != len(xt):
            raise ValueError(f"text_features: expected {len(xi)} rows (one per image), got shape {xt.shape}")
        self.pcas = []
        red = []
        for x in (xi, xt):
            k = None if self.pca_dim is None else min(self.pca_dim, x.shape[1], len(x) - 1)
            p = PCA(k, random_state=self.seed).fit(x) if k is not None and k < x.shape[1] else None
            self.pcas.append(p)
            red.append(p.transform(x) if p is not None else x)
        k = min(self.n_components, red[0].shape[1], red[1].shape[1])
        self.cca = CCA(n_components=k, max_iter=self.max_iter).fit(red[0], red[1])
        return self

    def transform(self, image_features: Any, text_features: Any) -> tuple[np.ndarray, np.ndarray]:
        """Project (n_i, Di) images and (n_t, Dt) texts into the common space: ((n_i, k), (n_t, k))."""
        if not hasattr(self, "cca"):
            raise ValueError("CCABaseline: call fit() before transform()")
        xi = check_matrix(image_features, "image_features", dtype=np.float32)
        xt = check_matrix(text_features, "text_features", dtype=np.float32)
        xi = self.pcas[0].transform(xi) if self.pcas[0] is not None else xi
        xt = self.pcas[1].transform(xt) if self.pcas[1] is not None else xt
        # sklearn's CCA.transform projects X (and Y) with their own rotations; call it per modality
        zi = self.cca.transform(xi)
        _, zt = self.cca.transform(np.zeros((len(xt), xi.shape[1]), np.float32), xt)
        return np.asarray(zi, np.float32), np.asarray(zt, np.float32)


# ---------------------------------------------------------------------------------------------------------------
# data


@dataclass
class CrossModalSplit:
    """Paired image/text features with labels, train and test (row i of image and text is one pair)."""

    train_image: np.ndarray  # (n_train, Di)
    train_text: np.ndarray  # (n_train, Dt)
    train_labels: np.ndarray  # (n_train,) ids or (n_train, c) multi-hot
    test_image: np.ndarray
    test_text: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for part in ("train", "test"):
            xi, xt, y = (getattr(self, f"{part}_{k}") for k in ("image", "text", "labels"))
            if xi.ndim != 2 or xt.ndim != 2 or len(xi) != len(xt) or len(y) != len(xi):
                raise ValueError(
                    f"{part}_image, {part}_text, {part}_labels: expected (n, Di), (n, Dt), (n,...), "
                    f"got {xi.shape}, {xt.shape}, {np.shape(y)}"
                )

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


#: A Wikipedia-style vocabulary for Fashion-MNIST: words of each class, of its coarse group, and background words.
FASHION_WORDS: dict[str, Any] = {
    "class": {
        "T-shirt/top": ["tshirt", "tee", "crew", "neckline", "cotton", "printed", "casual", "sleeveless"],
        "Trouser": ["trousers", "pants", "legs", "waistband", "denim", "jeans", "chinos", "pleat"],
        "Pullover": ["pullover", "sweater", "knit", "wool", "jumper", "ribbed", "cosy", "cardigan"],
        "Dress": ["dress", "gown", "skirt", "evening", "hemline", "bodice", "frock", "flared"],
        "Coat": ["coat", "overcoat", "winter", "lapel", "trench", "buttons", "outerwear", "parka"],
        "Sandal": ["sandal", "straps", "summer", "open", "toe", "buckle", "beach", "flipflop"],
        "Shirt": ["shirt", "collar", "cuffs", "buttoned", "formal", "oxford", "blouse", "placket"],
        "Sneaker": ["sneaker", "trainer", "running", "laces", "rubber", "sport", "canvas", "athletic"],
        "Bag": ["bag", "handbag", "purse", "leather", "handle", "tote", "zipper", "shoulder"],
        "Ankle boot": ["boot", "ankle", "heel", "chelsea", "suede", "bootie", "zip", "stiletto"],
    },
    "coarse": {
        "top": ["upper", "body", "sleeve", "chest", "layer", "torso"],
        "bottom": ["lower", "waist", "hips", "length", "fit", "belt"],
        "dress": ["outfit", "elegant", "occasion", "silhouette", "party", "length"],
        "footwear": ["shoe", "sole", "foot", "walking", "pair", "footwear"],
        "bag": ["carry", "accessory", "storage", "strap", "pocket", "carry"],
    },
    "background": [
        "fashion",
        "style",
        "design",
        "brand",
        "colour",
        "fabric",
        "season",
        "collection",
        "trend",
        "history",
        "century",
        "popular",
        "worn",
        "clothing",
        "designer",
        "market",
        "retail",
        "material",
        "modern",
        "classic",
        "people",
        "culture",
        "industry",
        "size",
        "price",
        "quality",
        "wear",
        "garment",
        "textile",
        "look",
    ],
}


def synthetic_documents(
    labels: Any,
    class_names: Sequence[str],
    vocab: dict[str, Any] | None = None,
    coarse_of: dict[str, str] | None = None,
    length: tuple[int, int] = (30, 60),
    signal: float = 0.25,
    coarse_share: float = 0.15,
    seed: int = 0,
) -> list[str]:
    """Wikipedia-style documents for labelled items: each word is drawn, independently, from the item's class
    words (probability ``signal_i``), its coarse group's words (``coarse_share``) or the background words.

    ``signal_i`` is drawn per document from a Beta distribution with mean ``signal`` (concentration 4), so some
    documents are on topic and some barely mention it, as Wikipedia articles of one category do.

    Args:
        labels: (N,) class ids into ``class_names``. vocab: like :data:`FASHION_WORDS` (default).
        coarse_of: class name → coarse group (default :data:`xmr_lib.data.FASHION_COARSE`).
        length: (min, max) words per document. signal: mean class-word share in (0, 1). seed: the draw.
    Returns:
        N strings.
    """

    vocab = vocab or FASHION_WORDS
    coarse_of = coarse_of or FASHION_COARSE
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= len(class_names))):
        raise ValueError(f"labels: expected (N,) ids into {len(class_names)} class_names, got shape {y.shape}")
    if not 0 < signal < 1 or not 0 <= coarse_share < 1 or signal + coarse_share >= 1:
        raise ValueError(
            f"signal, coarse_share: expected shares in (0, 1) with a sum < 1, got {signal!r}, {coarse_share!r}"
        )
    lo, hi = int(length[0]), int(length[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"length: expected (min, max) with 1 <= min <= max, got {length!r}")
    rng = np.random.default_rng(seed)
    bg = np.asarray(vocab["background"])
    docs = []
    a = 4.0 * signal
    for k in y:
        name = class_names[int(k)]
        cw, gw = np.asarray(vocab["class"][name]), np.asarray(vocab["coarse"][coarse_of[name]])
        s = rng.beta(a, 4.0 - a)
        n = int(rng.integers(lo, hi + 1))
        u = rng.random(n)
        src = np.where(u < s, 0, np.where(u < s + coarse_share, 1, 2))
        words = [
            cw[rng.integers(len(cw))] if t == 0 else gw[rng.integers(len(gw))] if t == 1 else bg[rng.integers(len(bg))]
            for t in src
        ]
        docs.append(" ".join(words))
    return docs


def lda_features(
    train_docs: Sequence[str], test_docs: Sequence[str], n_topics: int = 20, seed: int = 0, max_iter: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's text feature: LDA topic proportions (sklearn, batch variational Bayes) of word counts, both
    fitted on the training documents. Returns ((n_train, n_topics), (n_test, n_topics)) float32, rows sum to 1."""
    from sklearn.decomposition import LatentDirichletAllocation

    n_topics = check_int(n_topics, "n_topics", 2)
    xtr, vocab = bag_of_words(list(train_docs))
    xte, _ = bag_of_words(list(test_docs), vocab=vocab)
    lda = LatentDirichletAllocation(
        n_components=n_topics, learning_method="batch", max_iter=max_iter, random_state=seed
    ).fit(xtr)
    return lda.transform(xtr).astype(np.float32), lda.transform(xte).astype(np.float32)


def clamp_fashion_wiki_sizes(n_train: int, n_test: int) -> tuple[int, int]:
    """``(n_train, n_test)`` clamped to the offline Fashion-MNIST splits :func:`fashion_wiki_pairs` draws from (e.g.
    when the full profile falls back to the offline set). Raises ValueError naming a size below 10."""

    n_train, n_test = check_int(n_train, "n_train", 10), check_int(n_test, "n_test", 10)
    return (
        min(n_train, len(data.load("fashion_mnist", "train").labels)),
        min(n_test, len(data.load("fashion_mnist", "test").labels)),
    )


def fashion_wiki_pairs(
    n_train: int = 3000,
    n_test: int = 1000,
    text_features: str = "lda",
    n_topics: int = 20,
    signal: float = 0.25,
    coarse_share: float = 0.15,
    image_noise: float = 0.0,
    seed: int = 0,
) -> CrossModalSplit:
    """The offline Wikipedia-style set: Fashion-MNIST images (flattened pixels in [0, 1], 784-d; class-stratified
    subsets of the vendored train and test splits) paired one-to-one with :func:`synthetic_documents` of their
    class; one label per pair, 10 classes, as Wikipedia's 10 categories.

    Args:
        n_train, n_test: pairs per split. text_features: ``"lda"`` (n_topics-d topic proportions, the paper's),
            ``"minilm"`` (384-d sentence embeddings, cached) or ``"tfidf"``.
        signal, coarse_share: document model (:func:`synthetic_documents`). image_noise: σ of Gaussian pixel
            noise (0: none). seed: subsets, documents, noise and LDA.
    Returns:
        :class:`CrossModalSplit` (``meta`` keeps the documents).
    """

    if text_features not in ("lda", "minilm", "tfidf"):
        raise ValueError(f"text_features: expected 'lda', 'minilm' or 'tfidf', got {text_features!r}")
    tr = data.load("fashion_mnist", "train", n=check_int(n_train, "n_train", 10), seed=seed)
    te = data.load("fashion_mnist", "test", n=check_int(n_test, "n_test", 10), seed=seed)
    rng = np.random.default_rng(seed + 7919)
    imgs = []
    for ds in (tr, te):
        x = ds.images.reshape(len(ds), -1).astype(np.float32) / 255.0
        if image_noise:
            x = np.clip(x + rng.normal(0, image_noise, x.shape).astype(np.float32), 0, 1)
        imgs.append(x)
    docs_tr = synthetic_documents(tr.labels, tr.class_names, signal=signal, coarse_share=coarse_share, seed=seed)
    docs_te = synthetic_documents(te.labels, te.class_names, signal=signal, coarse_share=coarse_share, seed=seed + 1)
    if text_features == "lda":
        ttr, tte = lda_features(docs_tr, docs_te, n_topics, seed)
    elif text_features == "tfidf":
        ttr, _ = text.tfidf(docs_tr)
        tte, _ = text.tfidf(docs_te, fit_texts=docs_tr)
    else:
        ttr = np.asarray(text.encode(docs_tr, progress=False), np.float32)
        tte = np.asarray(text.encode(docs_te, progress=False), np.float32)
    return CrossModalSplit(
        imgs[0],
        ttr,
        tr.labels.copy(),
        imgs[1],
        tte,
        te.labels.copy(),
        list(tr.class_names),
        meta={
            "dataset": "fashion_wiki",
            "text_features": text_features,
            "train_docs": docs_tr,
            "test_docs": docs_te,
            "test_images": te.images,
        },
    )


PAPER_DATASETS = ("wikipedia", "pascal_sentence", "voc2007")


#: datasets whose converted layout (``python -m data_scripts fetch NAME``) :func:`converted_feature_pairs` reads
CONVERTED_PAPER_DATASETS = ("wikipedia", "pascal_sentence", "voc2007")
FEATURES_FILE = "isomorphic_features.npz"


def _paper_split(name: str, labels: np.ndarray, splits: Sequence[str], protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices of the converted index. ``"paper"``: Wikipedia's official lists (2,173 / 693),
    VOC 2007's trainval / test lists (5,011 / 4,952, §3.1);
    Pascal Sentence 30 / 20 per class (the 600 / 400 split of [7]: the first 30 images of each class, in the
    converter's file-name order, train, the other 20 test; the exact membership of [7]'s split is not published).
    ``"converted"``: the converted ``split`` column (train + val → train, test → test)."""
    if protocol not in ("paper", "converted"):
        raise ValueError(f"protocol: expected 'paper' or 'converted', got {protocol!r}")
    sp = np.asarray(splits)
    if protocol == "converted" or name in ("wikipedia", "voc2007"):
        tr, te = np.flatnonzero(np.isin(sp, ("train", "val"))), np.flatnonzero(sp == "test")
    else:
        tr, te = [], []
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)  # index.csv keeps each class's files sorted by name
            k = 30 if len(idx) == 50 else int(round(0.6 * len(idx)))
            tr.extend(idx[:k])
            te.extend(idx[k:])
        tr, te = np.sort(np.asarray(tr, np.int64)), np.sort(np.asarray(te, np.int64))
    if len(tr) == 0 or len(te) == 0:
        raise ValueError(f"{name}: the {protocol!r} protocol leaves {len(tr)} training and {len(te)} test pairs")
    return tr, te


def pair_labels(name: str, ds) -> np.ndarray:
    """The labels of a converted paper dataset's pairs (an ``ImageSet`` of :func:`data.load_converted`): (n,) class
    ids (Wikipedia, Pascal Sentence) or, for VOC 2007, (n, 20) multi-hot int64 from index.csv's ``labels`` column
    (every object class of the image). ValueError naming the dataset for a row without a label."""
    if name == "voc2007":
        if ds.multilabels is None:
            raise ValueError(f"{name}: index.csv has no labels column; re-run `python -m data_scripts convert {name}`")
        y = np.asarray(ds.multilabels, np.int64)
        empty = np.flatnonzero(y.sum(1) == 0)
        if empty.size:
            raise ValueError(f"{name}: row {int(empty[0])} of index.csv ({ds.meta['paths'][empty[0]]}) has no label")
        return y
    labels = np.asarray(ds.labels, np.int64)
    if (labels < 0).any():
        raise ValueError(f"{name}: expected one class id per pair in index.csv, found label -1")
    return labels


def _converted_text_features(
    name: str,
    docs: Sequence[str],
    tr: np.ndarray,
    te: np.ndarray,
    text_features: str,
    n_topics: int,
    seed: int,
    max_vocab: int,
    lda_iter: int,
    device: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(train (n_tr, Dt), test (n_te, Dt)) float32 text features fitted on the training documents only."""
    train_docs, test_docs = [docs[i] for i in tr], [docs[i] for i in te]
    if text_features == "lda":
        from sklearn.decomposition import LatentDirichletAllocation
        from sklearn.feature_extraction.text import CountVectorizer

        # sparse counts (whole Wikipedia articles: a dense matrix would not fit), English stop words removed as
        # in the paper (no stemming / lemmatisation here)
        cv = CountVectorizer(stop_words="english", max_features=max_vocab, token_pattern=r"(?u)\b[^\W\d_]{2,}\b")
        xtr = cv.fit_transform(train_docs)
        lda = LatentDirichletAllocation(
            n_components=check_int(n_topics, "n_topics", 2),
            learning_method="batch",
            max_iter=lda_iter,
            random_state=seed,
        ).fit(xtr)
        return (lda.transform(xtr).astype(np.float32), lda.transform(cv.transform(test_docs)).astype(np.float32))
    if text_features == "tfidf":
        ttr, vocab = text.tfidf(train_docs, max_features=max_vocab, stop_words="english")
        tte, _ = text.tfidf(test_docs, fit_texts=train_docs, max_features=max_vocab, stop_words="english")
        return ttr, tte
    if text_features == "minilm":
        e = np.asarray(text.encode(list(docs), device=device, progress=True), np.float32)
        return e[tr], e[te]
    raise ValueError(f"text_features: expected 'lda', 'tfidf' or 'minilm', got {text_features!r}")


def converted_feature_pairs(
    name: str,
    root: str | Path,
    text_features: str = "lda",
    n_topics: int = 100,
    image_size: int = 224,
    device: str = "auto",
    batch_size: int = 64,
    seed: int = 0,
    protocol: str = "paper",
    cache: bool = True,
    max_vocab: int = 20000,
    lda_iter: int = 20,
    progress: bool = True,
) -> CrossModalSplit:
    """Wikipedia / Pascal Sentence / VOC 2007 features built from the layout ``python -m data_scripts fetch NAME --root ROOT``
    writes (``ROOT/NAME/index.csv``, ``images/``, ``captions.csv``), for when no ``isomorphic_features.npz`` is
    there.

    - images: global-average-pooled EfficientNet-Lite0 features (1280-d, ImageNet weights, frozen) at
      ``image_size`` px (centre square), L2-normalised per image — *not* the paper's 4096-d AlexNet fc7 (no
      AlexNet weights ship offline); computed in batches on ``device`` and cached with :mod:`xmr_lib.core.cache`;
    - texts: one document per pair (the Wikipedia article; Pascal Sentence's five sentences joined; VOC 2007's tag
      list — not the paper's 798-d tag-ranking feature of [20]), featurised as
      ``"lda"`` (``n_topics`` topic proportions, the paper's; fitted on the training documents), ``"tfidf"`` or
      ``"minilm"`` (384-d sentence embeddings); cached as well;
    - split: ``protocol="paper"`` — Wikipedia's official 2,173 / 693, Pascal Sentence 30 / 20 per class (600 / 400,
      see :func:`_paper_split`), VOC 2007 trainval / test; ``"converted"`` — the converted split column (train + val /
      test).

    Returns:
        :class:`CrossModalSplit` with (n, 1280) image and (n, Dt) text features and (n,) class ids ((n, 20)
        multi-hot for VOC 2007); ``meta`` has
        the documents, image paths and how the features were made.
    Raises:
        FileNotFoundError naming the fetch command when the converted dataset is not under ``root``.
    """
    import hashlib

    if name not in CONVERTED_PAPER_DATASETS:
        raise ValueError(
            f"name: features are built from the converted layout only for {CONVERTED_PAPER_DATASETS}, got {name!r}"
        )
    if text_features not in ("lda", "tfidf", "minilm"):
        raise ValueError(f"text_features: expected 'lda', 'tfidf' or 'minilm', got {text_features!r}")
    image_size = check_int(image_size, "image_size", 32)
    ds = data.load_converted(name, root, "all")  # FileNotFoundError with the fetch command
    if ds.meta.get("all_captions") is None:
        raise ValueError(
            f"{Path(root) / name}: no captions.csv; re-run `python -m data_scripts convert {name} --root {root}`"
        )
    labels = pair_labels(name, ds)
    docs = [" ".join(c) for c in ds.meta["all_captions"]]
    tr, te = _paper_split(name, labels, ds.meta["splits"], protocol)
    paths = ds.meta["paths"]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name}: {len(missing)} of {len(paths)} image files are missing (e.g. {missing[0]}); "
            f"re-run `python -m data_scripts fetch {name} --root {root}`"
        )
    dev = resolve_device(device)
    ident = {
        "dataset": name,
        "root": str(Path(root).resolve()),
        "n": len(paths),
        "digest": hashlib.sha1("\n".join(paths).encode()).hexdigest()[:16],
    }
    img = image_features(
        paths=paths,
        size=image_size,
        device=dev,
        batch_size=batch_size,
        center=False,
        cache_key={**ident, "for": "isomorphic"} if cache else None,
        progress=progress,
    )

    def text_parts():
        a, b = _converted_text_features(name, docs, tr, te, text_features, n_topics, seed, max_vocab, lda_iter, dev)
        return {"train": a, "test": b}

    tkey = {
        **ident,
        "what": "isomorphic_text",
        "text_features": text_features,
        "protocol": protocol,
        "n_topics": int(n_topics) if text_features == "lda" else None,
        "seed": int(seed),
        "max_vocab": int(max_vocab),
        "lda_iter": int(lda_iter),
    }
    txt = cached(tkey, text_parts) if cache else text_parts()
    return CrossModalSplit(
        img[tr],
        np.asarray(txt["train"], np.float32),
        labels[tr],
        img[te],
        np.asarray(txt["test"], np.float32),
        labels[te],
        list(ds.class_names),
        meta={
            "dataset": name,
            "source": "converted layout (features built by xmr)",
            "image_features": f"EfficientNet-Lite0 GAP 1280-d at {image_size} px (not AlexNet fc7)",
            "text_features": text_features,
            "protocol": protocol,
            "train_docs": [docs[i] for i in tr],
            "test_docs": [docs[i] for i in te],
            "test_paths": [paths[i] for i in te],
        },
    )


def load_feature_pairs(name: str, root: str | Path | None, **build_kw) -> CrossModalSplit:
    """A paper dataset as features: ``<root>/<name>/isomorphic_features.npz`` when it is there (``train_image``,
    ``train_text``, ``train_labels``, ``test_image``, ``test_text``, ``test_labels`` — labels (n,) ids or (n, c)
    multi-hot — and ``class_names``; e.g. the paper's 4096-d AlexNet fc7 / 100-d LDA features, written by hand),
    else, for Wikipedia, Pascal Sentence and VOC 2007, built from the converted layout of
    ``python -m data_scripts fetch NAME --root DIR`` by :func:`converted_feature_pairs` (``build_kw`` are its
    options: ``text_features``, ``n_topics``, ``image_size``, ``device``, ``seed``, ``protocol``, ...).

    Raises:
        ValueError naming what is missing and the fetch command (never a silent fallback to other data).
    """
    if name not in PAPER_DATASETS:
        raise ValueError(f"name: expected one of {PAPER_DATASETS}, got {name!r}")
    cmd = f"python -m data_scripts fetch {name} --root {root or 'DIR'}"
    if root is None:
        raise ValueError(
            f"data_root: the full profile reads {name} from disk; run `{cmd}` and pass data_root=DIR"
            if name in CONVERTED_PAPER_DATASETS
            else f"data_root: the full profile needs {name}'s features in DIR/{name}/{FEATURES_FILE} "
            "(no data_scripts entry); pass data_root=DIR"
        )
    path = Path(root) / name / FEATURES_FILE
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        need = {"train_image", "train_text", "train_labels", "test_image", "test_text", "test_labels", "class_names"}
        if need - set(z.files):
            raise ValueError(f"{path}: missing arrays {sorted(need - set(z.files))}")
        return CrossModalSplit(
            z["train_image"].astype(np.float32),
            z["train_text"].astype(np.float32),
            z["train_labels"],
            z["test_image"].astype(np.float32),
            z["test_text"].astype(np.float32),
            z["test_labels"],
            [str(s) for s in z["class_names"]],
            meta={
                "dataset": name,
                "source": str(path),
                # optional entry naming the image features, e.g. "AlexNet fc7 (ImageNet, frozen)": the per-dataset
                # Table 3 targets apply only to the paper's features
                "image_features": str(z["image_features"]) if "image_features" in z.files else "not named in the file",
            },
        )
    if name not in CONVERTED_PAPER_DATASETS:
        raise ValueError(
            f"data_root: {path} not found; {name} has no data_scripts converter: write that file "
            "yourself (arrays train_image, train_text, train_labels, test_image, test_text, test_labels, "
            "class_names)"
        )

    if not converted_available(name, root):
        raise ValueError(
            f"data_root: neither {path} nor the converted {name} ({Path(root) / name / 'index.csv'}) "
            f"is there; run `{cmd}`"
        )
    print(
        f"{name}: no {FEATURES_FILE} under {Path(root) / name}; building the features from the converted layout "
        "(EfficientNet-Lite0 image features instead of the paper's AlexNet fc7; cached after the first run)"
    )
    return converted_feature_pairs(name, root, **build_kw)


# ---------------------------------------------------------------------------------------------------------------
# experiment helpers (keep the notebook thin)


def run_isomorphic(
    split: CrossModalSplit, config: CommonSpaceTrainConfig, seed: int = 0, device: str = "cpu", space: str | None = None
) -> dict[str, Any]:
    """Train on ``split``'s training pairs and evaluate on its test pairs.

    ``space``: the representation retrieved with (default: ``"latent"`` for the triplet objective, else
    ``"semantic"``). Returns ``{"i2t", "t2i", "average", "consistency", "image_acc", "text_acc", "seconds",
    "model", "history", "test_repr": (images, texts)}``; the accuracies are the arg-max of the semantic vectors
    (single-label sets; NaN for multi-label).
    """
    t0 = time.time()
    model, hist = train_common_space_model(
        split.train_image, split.train_text, split.train_labels, config, seed=seed, device=device
    )
    space = space or ("latent" if config.objective == "triplet" else "semantic")
    zi, zt = represent(model, split.test_image, split.test_text, space)
    out: dict[str, Any] = cross_modal_map(zi, zt, split.test_labels)
    out["consistency"] = pair_consistency(zi, zt)
    if np.asarray(split.test_labels).ndim == 1:
        pi, pt = represent(model, split.test_image, split.test_text, "semantic") if space != "semantic" else (zi, zt)
        out["image_acc"] = float((pi.argmax(1) == split.test_labels).mean())
        out["text_acc"] = float((pt.argmax(1) == split.test_labels).mean())
    else:
        out["image_acc"] = out["text_acc"] = float("nan")
    out.update(seconds=time.time() - t0, model=model, history=hist, test_repr=(zi, zt))
    return out


def run_cca(split: CrossModalSplit, n_components: int = 10, pca_dim: int | None = 32, seed: int = 0) -> dict[str, Any]:
    """Fit :class:`CCABaseline` on the training pairs, evaluate on the test pairs (Euclidean mAP)."""
    t0 = time.time()
    cca = CCABaseline(n_components, pca_dim, seed=seed).fit(split.train_image, split.train_text)
    zi, zt = cca.transform(split.test_image, split.test_text)
    out: dict[str, Any] = cross_modal_map(zi, zt, split.test_labels)
    out.update(
        consistency=pair_consistency(zi, zt),
        image_acc=float("nan"),
        text_acc=float("nan"),
        seconds=time.time() - t0,
        model=cca,
        history={},
        test_repr=(zi, zt),
    )
    return out
