"""DCMH, the baseline of Table 3.2 (Jiang & Li, "Deep Cross-Modal Hashing", CVPR 2017), written from the paper's
formulation (its Eqs. 1–3 and Algorithm 1), on the chapter's features and evaluation.

With ``F`` (n, K) the image network's outputs and ``G`` (n, K) the text network's (real-valued, no tanh: DCMH's
last layer is linear), ``Θ_ij = ½ F_iᵀ G_j``, the binary similarity ``S`` (a shared label) and ``B ∈ {−1, +1}``
(n, K) the training codes, DCMH minimises

    J = −Σ_ij (S_ij Θ_ij − log(1 + e^Θ_ij)) + γ (‖B − F‖²_F + ‖B − G‖²_F) + η (‖Fᵀ1‖² + ‖Gᵀ1‖²)

(:func:`dcmh_objective`) by alternating: the image network with G and B fixed (each batch of images against the
whole training set's G), the text network with F and B fixed, then ``B = sign(γ (F + G))``. Queries and the
database are coded by ``sign`` of the network outputs.

**How this differs from the chapter's Baseline1** (``hashing.ABLATIONS["Baseline1"]``: L_pairs + L_q + the balance
term, trained by the same alternating loop with the same buffers): Baseline1 (i) applies the pairwise likelihood
twice, to the N-dimensional common features and to the tanh soft codes, where DCMH applies it once, to the
K-dimensional linear outputs; (ii) quantises each modality to its own sign (Eq. 3.1) where DCMH pulls both towards
the shared ``B = sign(F + G)``; (iii) has the chapter's branches (a common layer N, the multi-scale text fusion,
dropout) where DCMH's text network is BoW → 8192 → K and its image network CNN-F → K; (iv) clips gradients. What
both share: the alternating passes against whole-training-set buffers, DCMH's normalisation (every term divided
by batch × n_train), and the optimiser — Adam with the chapter's log-linear learning-rate decay, where DCMH used
SGD with its own decay (a choice of ours, so that the comparison differs only in the model and the loss). The image
network here sits on the chapter's frozen image features (DCMH fine-tunes CNN-F end to end).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.chapters.ch03 import crossmodal as cm
from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.core.checks import check_2d
from xmr_lib.core.setup import resolve_device
from xmr_lib.train import loop

__all__ = ["DCMHConfig", "DCMHModel", "dcmh_objective", "dcmh_step_loss", "train_dcmh", "run_dcmh_many"]


@dataclass
class DCMHConfig:
    """DCMH's settings. ``gamma`` / ``eta``: the quantisation and balance weights (DCMH: γ = η = 1).
    ``image_hidden``: hidden widths between the frozen image feature and the K outputs (``()``: one linear layer,
    CNN-F's fc8 on its fc7); ``text_hidden``: the text network's hidden layer (DCMH: 8192). Optimisation: Adam with
    a log-linear decay ``lr_start → lr_end`` over ``epochs`` (each an image pass then a text pass).
    ``image_trunk="alexnet"``: the image network is :class:`~xmr_lib.chapters.ch03.hashing.AlexNetFC7` (ImageNet
    weights unless ``trunk_pretrained=False``) → K, fine-tuned end to end on raw images, as DCMH fine-tunes CNN-F."""

    n_bits: int = 32
    image_hidden: tuple[int, ...] = ()
    text_hidden: int = 8192
    gamma: float = 1.0
    eta: float = 1.0
    epochs: int = 30
    batch_size: int = 128
    lr_start: float = 1e-3
    lr_end: float = 1e-5
    image_trunk: str = "none"
    trunk_pretrained: bool = True

    def __post_init__(self):
        if self.image_trunk not in H.IMAGE_TRUNKS:
            raise ValueError(f"image_trunk: expected one of {H.IMAGE_TRUNKS}, got {self.image_trunk!r}")
        for k in ("n_bits", "text_hidden", "epochs", "batch_size"):
            setattr(self, k, H._whole(k, getattr(self, k), 1))
        self.image_hidden = tuple(H._whole(f"image_hidden[{i}]", h, 1) for i, h in enumerate(self.image_hidden))
        for k in ("gamma", "eta"):
            H._real(k, getattr(self, k), "a weight ≥ 0", lambda v: v >= 0)
        for k in ("lr_start", "lr_end"):
            H._real(k, getattr(self, k), "a learning rate > 0", lambda v: v > 0)


def dcmh_objective(
    f: torch.Tensor, g: torch.Tensor, s: torch.Tensor, b: torch.Tensor, gamma: float = 1.0, eta: float = 1.0
) -> dict[str, torch.Tensor]:
    """DCMH's objective J (its Eq. 3) on a whole training set, as summed terms.

    Args:
        f, g: (n, K) image and text network outputs; s: (n, n) binary similarity (image i, text j);
        b: (n, K) codes in ±1; gamma, eta: the quantisation and balance weights.
    Returns:
        ``{"pairs": −Σ (S Θ − log(1 + e^Θ)), "quant": ‖B − F‖² + ‖B − G‖², "balance": ‖Fᵀ1‖² + ‖Gᵀ1‖²,
        "total": pairs + γ quant + η balance}``.
    """
    check_2d(f, "f")
    check_2d(g, "g", f.shape[1])
    if s.shape != (f.shape[0], g.shape[0]):
        raise ValueError(f"s: expected shape {(f.shape[0], g.shape[0])} (rows of f × rows of g), got {tuple(s.shape)}")
    if b.shape != f.shape or g.shape != f.shape:
        raise ValueError(f"b, g: expected shape {tuple(f.shape)} (as f), got {tuple(b.shape)}, {tuple(g.shape)}")
    theta = 0.5 * f @ g.T
    pairs = (F.softplus(theta) - s * theta).sum()  # softplus(θ) = log(1 + e^θ)
    quant = (b - f).pow(2).sum() + (b - g).pow(2).sum()
    balance = f.sum(0).pow(2).sum() + g.sum(0).pow(2).sum()
    return {"pairs": pairs, "quant": quant, "balance": balance, "total": pairs + gamma * quant + eta * balance}


def dcmh_step_loss(
    out: torch.Tensor,
    ind: torch.Tensor,
    own_buf: torch.Tensor,
    other_buf: torch.Tensor,
    s_rows: torch.Tensor,
    b_rows: torch.Tensor,
    gamma: float,
    eta: float,
) -> dict[str, torch.Tensor]:
    """The part of J that one batch of one modality's outputs ``out`` (B, K) changes, with the other modality's
    outputs ``other_buf`` (n, K) and the codes fixed, divided by B × n (DCMH's normalisation).

    ``ind``: the batch's rows in the training set; ``own_buf`` (n, K): this modality's outputs of the whole set
    (the balance term ‖Fᵀ1‖² sums over every item: the batch's rows are replaced by ``out``); ``s_rows`` (B, n):
    the similarity of the batch to every item of the other modality; ``b_rows`` (B, K): the batch's codes.
    """
    theta = 0.5 * out @ other_buf.T
    pairs = (F.softplus(theta) - s_rows * theta).sum()
    quant = (b_rows - out).pow(2).sum()
    col_sum = own_buf.sum(0) - own_buf[ind].sum(0) + out.sum(0)
    balance = col_sum.pow(2).sum()
    norm = float(out.shape[0] * other_buf.shape[0])
    terms = {"pairs": pairs / norm, "quant": quant / norm, "balance": balance / norm}
    terms["total"] = terms["pairs"] + gamma * terms["quant"] + eta * terms["balance"]
    return terms


def _net(dims: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DCMHModel(nn.Module):
    """DCMH's two networks: image features (n, d) → [hidden ReLU] → K, BoW (n, T) → text_hidden ReLU → K; both
    outputs linear. ``encode`` follows the chapter model's interface (codes = sign of the outputs; ``"soft"`` and
    ``"features"`` both give the outputs)."""

    def __init__(self, image_dim: int, n_words: int, config: DCMHConfig):
        super().__init__()
        c = self.config = config
        if c.image_trunk == "none":
            self.image_net = _net([image_dim, *c.image_hidden, c.n_bits])
        else:  # images (n, 3·S·S) → fine-tuned AlexNet fc7 → K
            trunk = H.AlexNetFC7(c.trunk_pretrained)
            self.image_net = nn.Sequential(trunk, _net([trunk.out_dim, *c.image_hidden, c.n_bits]))
        self.text_net = _net([n_words, c.text_hidden, c.n_bits])
        self.history: list[dict[str, float]] = []

    def branch(self, modality: str) -> nn.Module:
        if modality not in ("image", "text"):
            raise ValueError(f"modality: expected 'image' or 'text', got {modality!r}")
        return self.image_net if modality == "image" else self.text_net

    @torch.no_grad()
    def encode(self, x: Any, modality: str, batch_size: int = 2048, what: str = "codes") -> np.ndarray:
        """(n, K) codes (int8 ±1) or, for ``what="soft"`` / ``"features"``, the real-valued outputs."""
        if what not in ("codes", "soft", "features"):
            raise ValueError(f"what: expected 'codes', 'soft' or 'features', got {what!r}")
        net = self.branch(modality)
        was = net.training
        net.eval()
        dev = next(net.parameters()).device
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        out = [net(x[i : i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]
        net.train(was)
        z = torch.cat(out).numpy() if out else np.zeros((0, self.config.n_bits), np.float32)
        return H.sign_codes(z) if what == "codes" else z


class DCMHTask(loop.Task):
    """DCMH's Algorithm 1 as a :class:`xmr_lib.train.loop.Task`: per epoch an image pass (text outputs and codes
    fixed), a text pass (image outputs and codes fixed), then ``B = sign(F + G)``. Buffers hold both networks'
    outputs of the whole training set (initialised with the untrained networks' outputs), refreshed batch by
    batch. Every epoch appends the pass means and the whole objective J / n² to ``model.history``."""

    def __init__(self, model: DCMHModel, X: torch.Tensor, Y: torch.Tensor, S: torch.Tensor, gen: torch.Generator):
        c = self.c = model.config
        self.model, self.inputs, self.S, self.gen = model, {"image": X, "text": Y}, S, gen
        self.n, self.bs = X.shape[0], min(c.batch_size, X.shape[0])
        fused = {"image": {"fused": True}} if c.image_trunk != "none" else {}  # a trunk: the fused Adam kernel
        self.opt = {
            m: torch.optim.Adam(model.branch(m).parameters(), lr=c.lr_start, **fused.get(m, {}))
            for m in ("image", "text")
        }
        with torch.no_grad():
            self.buf = {
                m: torch.cat([model.branch(m)(x).float() for x in self.inputs[m].split(1024)])
                for m in ("image", "text")
            }
        self.B = H.sign_codes(self.buf["image"] + self.buf["text"])
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.t0 = time.perf_counter()

    def on_epoch_start(self, trainer: loop.Trainer, epoch: int) -> None:
        c = self.c
        r = epoch / (c.epochs - 1) if c.epochs > 1 else 0.0
        self.lr = math.exp(math.log(c.lr_start) * (1 - r) + math.log(c.lr_end) * r)
        for o in self.opt.values():
            for gr in o.param_groups:
                gr["lr"] = self.lr
        self.sums, self.counts = {}, {}

    def batches(self, trainer: loop.Trainer, epoch: int):
        for mod in ("image", "text"):
            perm = torch.randperm(self.n, generator=self.gen).to(self.S.device)
            for b in range(max(1, self.n // self.bs)):
                yield mod, perm[b * self.bs : (b + 1) * self.bs]

    def training_step(self, trainer: loop.Trainer, batch) -> dict:
        mod, ind = batch
        other = "text" if mod == "image" else "image"
        out = self.model.branch(mod)(self.inputs[mod][ind]).float()
        s_rows = self.S[ind] if mod == "image" else self.S[:, ind].T  # S: image rows × text columns
        terms = dcmh_step_loss(out, ind, self.buf[mod], self.buf[other], s_rows, self.B[ind], self.c.gamma, self.c.eta)
        return {"loss": terms["total"], "terms": terms, "out": out}

    def optimizers(self, trainer: loop.Trainer, batch) -> list:
        return [self.opt[batch[0]]]

    def on_step_end(self, trainer: loop.Trainer, batch, out: dict) -> None:
        mod, ind = batch
        self.buf[mod][ind] = out["out"].detach()
        for k, v in out["terms"].items():
            key = f"{mod}/{k}"
            self.sums[key] = self.sums.get(key, 0.0) + float(v.detach())
            self.counts[key] = self.counts.get(key, 0) + 1

    def on_epoch_end(self, trainer: loop.Trainer, epoch: int) -> None:
        c = self.c
        self.B = H.sign_codes(c.gamma * (self.buf["image"] + self.buf["text"]))  # DCMH's B-step
        with torch.no_grad():
            j = dcmh_objective(self.buf["image"], self.buf["text"], self.S, self.B, c.gamma, c.eta)
        stats = {k: self.sums[k] / self.counts[k] for k in self.sums}
        stats.update({f"objective/{k}": float(v) / self.n**2 for k, v in j.items()})
        bb = H.bit_balance(self.B)
        stats.update(epoch=epoch, lr=self.lr, seconds=time.perf_counter() - self.t0)
        stats["bit_balance_min"] = float(np.minimum(bb, 1 - bb).min())
        self.model.history.append(stats)


def train_dcmh(
    image_x: Any, text_y: Any, labels: Any, config: DCMHConfig | None = None, seed: int = 0, device: str = "auto"
) -> DCMHModel:
    """Train DCMH on paired training data (image features (n, d), BoW texts (n, T), multi-hot labels (n, c)).
    ``seed`` seeds the initialisation and the batch order. Returns the trained :class:`DCMHModel` (eval mode)."""
    c = config or DCMHConfig()
    X = H._as_tensor("image_x", image_x)
    n = X.shape[0]
    Y = H._as_tensor("text_y", text_y, n)
    lab = H._as_tensor("labels", labels, n)
    if n < 2:
        raise ValueError(f"image_x: need at least 2 training pairs, got {n}")
    dev = torch.device(resolve_device(device))
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    model = DCMHModel(X.shape[1], Y.shape[1], c).to(dev)
    S = H.binary_similarity(lab, lab).to(dev)
    # a fine-tuned trunk trains under the loop's bf16 AMP and channels_last on CUDA (no-ops on the CPU)
    trainer = loop.Trainer(max_epochs=c.epochs, device=dev, progress=False, amp=c.image_trunk != "none")
    trainer.prepare(model)
    task = DCMHTask(model, X.to(dev), Y.to(dev), S, gen)
    trainer.fit(task)
    return model.eval()


def run_dcmh_many(
    features: cm.CrossModalFeatures,
    config: DCMHConfig,
    seeds: Sequence[int],
    name: str = "DCMH",
    device: str = "auto",
    checkpoint=None,
    top_n: Sequence[int] = (100, 500, 1000),
) -> list[cm.HashingRun]:
    """DCMH trained on ``features``' training part at each of ``seeds`` and evaluated like the chapter's runs
    (:class:`~xmr_lib.chapters.ch03.crossmodal.HashingRun`, both directions; no modality probe). Finished runs
    are stored in and reloaded from ``checkpoint``."""
    return cm.run_baseline_many(train_dcmh, features, config, seeds, name, device, checkpoint, top_n)
