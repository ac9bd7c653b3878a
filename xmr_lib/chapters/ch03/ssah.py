"""SSAH, the second baseline of Table 3.2 (Li, Deng, Li, Liu, Gao & Tao, "Self-Supervised Adversarial Hashing
Networks for Cross-Modal Retrieval", CVPR 2018), written from the paper's formulation (its §3: the self-supervised
label network, the two modality networks, the adversarial modules and the alternating optimisation), on the
chapter's networks, features and evaluation.

Three networks share one set of per-item codes ``B ∈ {−1, +1}`` (n, K):

* **LabNet** — the multi-hot labels L (n, c) → ``label_hidden`` → semantic features ``F^l`` (n, N) → soft codes
  ``H^l = tanh`` (n, K) and predicted labels ``L̂^l`` (n, c). It supervises the two others: its outputs of the whole
  training set are the targets of their pairwise terms.
* **ImgNet / TxtNet** — the chapter's image and text branches (:class:`~xmr_lib.chapters.ch03.hashing.ImageHashNet`
  or the fine-tuned AlexNet trunk, :class:`~xmr_lib.chapters.ch03.hashing.TextHashNet` with SSAH's multi-scale
  fusion of the bag-of-words) → semantic features ``F^v`` (n, N), soft codes ``H^v`` (n, K), and a linear label
  head ``L̂^v`` (n, c) on ``F^v``.
* **Discriminators** ``D^v`` (one per modality, N → ``disc_hidden`` → ``disc_hidden`` → 1): tell LabNet's semantic
  features (target 1) from the modality's (target 0).

With ``Δ_ij = ½ F_iᵀ F^l_j`` and ``Γ_ij = ½ H_iᵀ H^l_j`` (a batch of one network against LabNet's outputs of the
whole training set; LabNet's own pass uses its own buffer), ``S`` the binary similarity (a shared label), each
network minimises (:func:`ssah_terms`)

    L = (α J_feat + γ J_code + η ‖H − B‖² + β ‖σ(L̂) − L‖² [+ μ ‖D^v(F^v) − 1‖², ImgNet / TxtNet only]) / (B n)

with ``J = Σ softplus(Δ) − S Δ`` (the negative pairwise log-likelihood, as DCMH's) on the semantic features and on
the codes, and each discriminator minimises ``‖D^v(F^l) − 1‖² + ‖D^v(F^v)‖²`` on detached features
(:func:`ssah_discriminator_loss`). An epoch is a LabNet pass, then an image pass and a text pass, each modality step
followed by one step of its discriminator; then ``B = sign(H^l + H^x + H^y)``. Queries and the database are coded by
``sign`` of the modality networks' soft codes.

**How this differs from the paper.** (i) The image network: SSAH fine-tunes CNN-F; here it is the chapter's image
branch — on the chapter's frozen image features (smoke / default) or AlexNet fine-tuned end to end (``full``,
``image_trunk="alexnet"``) — and the text network is the chapter's (hidden width ``text_hidden``, SSAH: 4096).
(ii) The adversarial term of the modality networks is the least-squares form ``‖D^v(F^v) − 1‖²`` (the flipped
target) rather than the literal ``−L_adv`` of the minimax: the same fixed point, but bounded below with a
discriminator whose output is not squashed. (iii) LabNet is trained by its own objective only (no adversarial
share). (iv) Every summed term is divided by batch × n (DCMH's normalisation, as :mod:`.dcmh` and the chapter's
``loss_reduction="dcmh"``), with the weights α = γ = η = β = μ = 1 (knobs of :class:`SSAHConfig`): the pair terms
are means over pairs and a per-sample term (quantisation, labels, adversarial) weighs ~1/n of them. Weighing every
term alike (each a mean over its own items) was tried on the toy data of the tests: the quantisation term froze
the codes at their first signs and the adversarial term pulled the features off the pairs, both at chance level.
(v) Δ and Γ carry DCMH's ½ (the chapter's :func:`~xmr_lib.chapters.ch03.hashing.pairwise_likelihood_loss`).
(vi) Optimisation is the chapter's: Adam with the log-linear decay ``lr_start → lr_end`` (SSAH: its own
schedule), through the one training loop (:mod:`xmr_lib.train.loop`, bf16 AMP and channels_last for a fine-tuned
trunk on CUDA), so that the comparison with the chapter's method and DCMH differs only in the model and the loss.
(vii) The discriminators' width (``disc_hidden`` = 128) is ours; notebook 03's default profile also narrows LabNet
(``ssah_label_hidden``) and trains SSAH at 32 bits only, for time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.chapters.ch03 import crossmodal as cm
from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.core.checks import check_2d
from xmr_lib.core.setup import resolve_device
from xmr_lib.train import loop

__all__ = [
    "SSAHConfig",
    "SSAHModel",
    "ssah_terms",
    "ssah_discriminator_loss",
    "train_ssah",
    "run_ssah_many",
]

MODALITIES = ("image", "text")


@dataclass
class SSAHConfig:
    """SSAH's settings. ``common_dim``: N, the semantic features' width (SSAH: 512); ``label_hidden``: LabNet's
    hidden layer (SSAH: 4096); ``image_hidden`` / ``text_hidden`` / ``text_multiscale``: the chapter's branches
    (:class:`~xmr_lib.chapters.ch03.hashing.HashingConfig`'s knobs of the same names); ``disc_hidden``: the
    discriminators' two hidden layers (ours: 128). Weights: ``alpha`` (pairwise term on the semantic features),
    ``gamma`` (on the codes), ``eta`` (quantisation), ``beta`` (label prediction), ``mu`` (adversarial). Optimisation: Adam
    with a log-linear decay ``lr_start → lr_end`` over ``epochs`` (each a LabNet, an image and a text pass).
    ``image_trunk="alexnet"``: the image network fine-tunes AlexNet on raw images (ImageNet weights unless
    ``trunk_pretrained=False``)."""

    n_bits: int = 32
    common_dim: int = 512
    label_hidden: int = 4096
    image_hidden: tuple[int, ...] = ()
    text_hidden: int = 4096
    text_multiscale: bool = True
    disc_hidden: int = 128
    dropout: float = 0.1
    alpha: float = 1.0
    gamma: float = 1.0
    eta: float = 1.0
    beta: float = 1.0
    mu: float = 1.0
    epochs: int = 30
    batch_size: int = 128
    lr_start: float = 1e-3
    lr_end: float = 1e-5
    image_trunk: str = "none"
    trunk_pretrained: bool = True

    def __post_init__(self):
        if self.image_trunk not in H.IMAGE_TRUNKS:
            raise ValueError(f"image_trunk: expected one of {H.IMAGE_TRUNKS}, got {self.image_trunk!r}")
        for k in ("n_bits", "common_dim", "label_hidden", "text_hidden", "disc_hidden", "epochs", "batch_size"):
            setattr(self, k, H._whole(k, getattr(self, k), 1))
        self.image_hidden = tuple(H._whole(f"image_hidden[{i}]", h, 1) for i, h in enumerate(self.image_hidden))
        H._real("dropout", self.dropout, "a probability in [0, 1)", lambda v: 0 <= v < 1)
        for k in ("alpha", "gamma", "eta", "beta", "mu"):
            H._real(k, getattr(self, k), "a weight ≥ 0", lambda v: v >= 0)
        for k in ("lr_start", "lr_end"):
            H._real(k, getattr(self, k), "a learning rate > 0", lambda v: v > 0)


def ssah_terms(
    f: torch.Tensor,
    h: torch.Tensor,
    label_logits: torch.Tensor,
    f_lab: torch.Tensor,
    h_lab: torch.Tensor,
    s: torch.Tensor,
    b: torch.Tensor,
    labels: torch.Tensor,
    config: SSAHConfig,
    d_out: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One network's SSAH objective on a batch, against LabNet's outputs of the whole training set.

    Args:
        f: (B, N) the batch's semantic features; h: (B, K) its soft codes; label_logits: (B, c) its label head's
            logits; f_lab, h_lab: (n, N), (n, K) LabNet's features and soft codes of the training set (fixed);
        s: (B, n) the binary similarity of the batch to every training item; b: (B, K) the batch's codes in ±1;
        labels: (B, c) the batch's multi-hot labels; config: the weights α, γ, η, β, μ;
        d_out: (B, 1) the modality's discriminator on ``f`` (``None``: LabNet's pass, no adversarial term).
    Returns:
        ``{"feat_pairs": Σ_ij softplus(Δ_ij) − S_ij Δ_ij, "code_pairs": the same for Γ, "quant": ‖H − B‖²,
        "label": ‖σ(L̂) − L‖², "adv": ‖D(F) − 1‖² (0 without ``d_out``), "total": the weighted sum}``, each sum
        divided by B × n (DCMH's normalisation: the pair terms become means over the B × n pairs, a per-sample
        term weighs ~1/n of them).
    """
    check_2d(f, "f")
    check_2d(h, "h")
    check_2d(f_lab, "f_lab", f.shape[1])
    check_2d(h_lab, "h_lab", h.shape[1])
    if b.shape != h.shape:
        raise ValueError(f"b: expected shape {tuple(h.shape)} (as h), got {tuple(b.shape)}")
    if labels.shape != label_logits.shape or labels.shape[0] != f.shape[0]:
        raise ValueError(
            f"labels, label_logits: expected the same shape (B={f.shape[0]}, c), got {tuple(labels.shape)}, "
            f"{tuple(label_logits.shape)}"
        )
    c, norm = config, float(f.shape[0] * f_lab.shape[0])  # DCMH's normalisation: every sum ÷ (B × n)
    terms = {
        "feat_pairs": H.pairwise_likelihood_loss(f, f_lab, s, reduction="sum") / norm,
        "code_pairs": H.pairwise_likelihood_loss(h, h_lab, s, reduction="sum") / norm,
        "quant": (h - b.detach()).pow(2).sum() / norm,
        "label": (torch.sigmoid(label_logits) - labels).pow(2).sum() / norm,
        "adv": (d_out - 1).pow(2).sum() / norm if d_out is not None else f.new_zeros(()),
    }
    terms["total"] = (
        c.alpha * terms["feat_pairs"]
        + c.gamma * terms["code_pairs"]
        + c.eta * terms["quant"]
        + c.beta * terms["label"]
        + c.mu * terms["adv"]
    )
    return terms


def ssah_discriminator_loss(d_lab: torch.Tensor, d_mod: torch.Tensor) -> torch.Tensor:
    """A discriminator's least-squares loss: ``mean (D(F^l) − 1)² + mean D(F^v)²`` — LabNet's semantic features
    are its positives (target 1), the modality's its negatives (target 0). ``d_lab``, ``d_mod``: (B, 1)."""
    return (d_lab - 1).pow(2).mean() + d_mod.pow(2).mean()


class LabNet(nn.Module):
    """SSAH's label network: labels (n, c) → ``hidden`` ReLU → F^l (n, N) → H^l = tanh (n, K) and label logits
    (n, c). ``forward`` returns ``(F^l, H^l, logits)``."""

    def __init__(self, n_labels: int, n_bits: int, common_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.n_labels = int(n_labels)
        self.body = H._mlp([n_labels, hidden], dropout)
        self.common = nn.Linear(hidden, common_dim)
        self.hash = H._HashHead(common_dim, n_bits, dropout, "none")
        self.label = nn.Linear(common_dim, n_labels)

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_2d(labels, "labels", self.n_labels)
        f = self.common(self.body(labels))
        return f, self.hash(f), self.label(f)


def _discriminator(dim: int, hidden: int) -> nn.Sequential:
    """N → hidden → hidden → 1 (a raw score; the least-squares losses need no sigmoid)."""
    return nn.Sequential(
        nn.Linear(dim, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, 1),
    )


class SSAHModel(nn.Module):
    """LabNet, the chapter's image and text branches (each ``forward`` → ``(F, H)``) with a label head each, and one
    discriminator per modality. ``encode`` follows the chapter model's interface (codes = sign of the soft codes)."""

    def __init__(self, image_dim: int, n_words: int, n_labels: int, config: SSAHConfig):
        super().__init__()
        c = self.config = config
        self.label_net = LabNet(n_labels, c.n_bits, c.common_dim, c.label_hidden, c.dropout)
        if c.image_trunk == "none":
            self.image_net = H.ImageHashNet(image_dim, c.n_bits, c.common_dim, c.image_hidden, c.dropout)
        else:
            self.image_net = H.TrunkImageHashNet(
                c.n_bits, c.common_dim, c.image_hidden, c.dropout, trunk=c.image_trunk, pretrained=c.trunk_pretrained
            )
        self.text_net = H.TextHashNet(
            n_words, c.n_bits, c.common_dim, c.text_hidden, c.text_multiscale, dropout=c.dropout
        )
        self.label_head = nn.ModuleDict({m: nn.Linear(c.common_dim, n_labels) for m in MODALITIES})
        self.disc = nn.ModuleDict({m: _discriminator(c.common_dim, c.disc_hidden) for m in MODALITIES})
        self.history: list[dict[str, float]] = []

    def branch(self, modality: str) -> nn.Module:
        if modality not in MODALITIES:
            raise ValueError(f"modality: expected 'image' or 'text', got {modality!r}")
        return self.image_net if modality == "image" else self.text_net

    @torch.no_grad()
    def encode(self, x: Any, modality: str, batch_size: int = 2048, what: str = "codes") -> np.ndarray:
        """(n, K) codes (int8 ±1), ``what="soft"``: the soft codes H (n, K), ``"features"``: F (n, N)."""
        if what not in ("codes", "soft", "features"):
            raise ValueError(f"what: expected 'codes', 'soft' or 'features', got {what!r}")
        net = self.branch(modality)
        was = net.training
        net.eval()
        dev = next(net.parameters()).device
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        out = [
            net(x[i : i + batch_size].to(dev))[0 if what == "features" else 1].float().cpu()
            for i in range(0, len(x), batch_size)
        ]
        net.train(was)
        width = self.config.common_dim if what == "features" else self.config.n_bits
        z = torch.cat(out).numpy() if out else np.zeros((0, width), np.float32)
        return H.sign_codes(z) if what == "codes" else z


@torch.no_grad()
def _outputs(net: nn.Module, x: torch.Tensor, bs: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """``(F, H)`` of ``net`` on every row of ``x`` in eval mode (no dropout), as float tensors."""
    was = net.training
    net.eval()
    outs = [net(chunk) for chunk in x.split(bs)]
    net.train(was)
    return torch.cat([o[0].float() for o in outs]), torch.cat([o[1].float() for o in outs])


class _FH(nn.Module):
    """LabNet's ``(F^l, H^l)`` (the label logits dropped), for :func:`_outputs`."""

    def __init__(self, net: LabNet):
        super().__init__()
        self.net = net

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(labels)[:2]


class SSAHTask(loop.Task):
    """SSAH's alternating optimisation as a :class:`xmr_lib.train.loop.Task`. Per epoch: a LabNet pass, then for the
    image and the text network a pass whose every step is followed by one step of that modality's discriminator,
    then ``B = sign(H^l + H^x + H^y)``. Buffers hold the three networks' ``(F, H)`` of the whole training set
    (initialised with the untrained networks' outputs), refreshed batch by batch. Every epoch appends the passes'
    mean terms to ``model.history``."""

    def __init__(
        self,
        model: SSAHModel,
        X: torch.Tensor,
        Y: torch.Tensor,
        Lab: torch.Tensor,
        S: torch.Tensor,
        gen: torch.Generator,
    ):
        c = self.c = model.config
        self.model, self.inputs, self.S, self.gen = model, {"image": X, "text": Y, "label": Lab}, S, gen
        self.n, self.bs = X.shape[0], min(c.batch_size, X.shape[0])
        fused = {"fused": True} if c.image_trunk != "none" else {}  # a trunk: the fused Adam kernel
        self.opt = {
            "label": torch.optim.Adam(model.label_net.parameters(), lr=c.lr_start),
            "image": torch.optim.Adam(
                [*model.image_net.parameters(), *model.label_head["image"].parameters()], lr=c.lr_start, **fused
            ),
            "text": torch.optim.Adam(
                [*model.text_net.parameters(), *model.label_head["text"].parameters()], lr=c.lr_start
            ),
        }
        self.opt.update({f"disc_{m}": torch.optim.Adam(model.disc[m].parameters(), lr=c.lr_start) for m in MODALITIES})
        self.buf = {"label": _outputs(_FH(model.label_net), Lab)}
        self.buf.update({m: _outputs(model.branch(m), self.inputs[m]) for m in MODALITIES})
        self._update_codes()
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.t0 = time.perf_counter()

    def _update_codes(self) -> None:
        self.B = H.sign_codes(self.buf["label"][1] + self.buf["image"][1] + self.buf["text"][1])

    def on_epoch_start(self, trainer: loop.Trainer, epoch: int) -> None:
        c = self.c
        r = epoch / (c.epochs - 1) if c.epochs > 1 else 0.0
        self.lr = math.exp(math.log(c.lr_start) * (1 - r) + math.log(c.lr_end) * r)
        for o in self.opt.values():
            for gr in o.param_groups:
                gr["lr"] = self.lr
        self.sums, self.counts = {}, {}

    def batches(self, trainer: loop.Trainer, epoch: int):
        for mod in ("label", *MODALITIES):
            perm = torch.randperm(self.n, generator=self.gen).to(self.S.device)
            for b in range(max(1, self.n // self.bs)):
                ind = perm[b * self.bs : (b + 1) * self.bs]
                yield mod, ind
                if mod != "label":
                    yield f"disc_{mod}", ind

    def training_step(self, trainer: loop.Trainer, batch) -> dict:
        mod, ind = batch
        m = self.model
        f_lab, h_lab = self.buf["label"]
        if mod.startswith("disc_"):
            d = m.disc[mod[5:]]
            loss = ssah_discriminator_loss(d(f_lab[ind]).float(), d(self.buf[mod[5:]][0][ind]).float())
            return {"loss": loss, "terms": {"loss": loss}}
        lab = self.inputs["label"][ind]
        if mod == "label":
            f, h, logits = m.label_net(lab)
            d_out = None
        else:
            f, h = m.branch(mod)(self.inputs[mod][ind])
            logits, d_out = m.label_head[mod](f), m.disc[mod](f).float()
        f, h, logits = f.float(), h.float(), logits.float()
        terms = ssah_terms(f, h, logits, f_lab, h_lab, self.S[ind], self.B[ind], lab, self.c, d_out)
        return {"loss": terms["total"], "terms": terms, "out": (f, h)}

    def optimizers(self, trainer: loop.Trainer, batch) -> list:
        return [self.opt[batch[0]]]

    def on_step_end(self, trainer: loop.Trainer, batch, out: dict) -> None:
        mod, ind = batch
        if "out" in out:
            for buf, new in zip(self.buf[mod], out["out"]):
                buf[ind] = new.detach()
        for k, v in out["terms"].items():
            key = f"{mod}/{k}"
            self.sums[key] = self.sums.get(key, 0.0) + float(v.detach())
            self.counts[key] = self.counts.get(key, 0) + 1

    def on_epoch_end(self, trainer: loop.Trainer, epoch: int) -> None:
        self._update_codes()
        stats = {k: self.sums[k] / self.counts[k] for k in self.sums}
        bb = H.bit_balance(self.B)
        stats.update(epoch=epoch, lr=self.lr, seconds=time.perf_counter() - self.t0)
        stats["bit_balance_min"] = float(np.minimum(bb, 1 - bb).min())
        self.model.history.append(stats)


def train_ssah(
    image_x: Any, text_y: Any, labels: Any, config: SSAHConfig | None = None, seed: int = 0, device: str = "auto"
) -> SSAHModel:
    """Train SSAH on paired training data (image features or flattened images (n, d), BoW texts (n, T), multi-hot
    labels (n, c)). ``seed`` seeds the initialisation and the batch order. Returns the trained :class:`SSAHModel`
    (eval mode)."""
    c = config or SSAHConfig()
    X = H._as_tensor("image_x", image_x)
    n = X.shape[0]
    Y = H._as_tensor("text_y", text_y, n)
    lab = H._as_tensor("labels", labels, n)
    if n < 2:
        raise ValueError(f"image_x: need at least 2 training pairs, got {n}")
    dev = torch.device(resolve_device(device))
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    model = SSAHModel(X.shape[1], Y.shape[1], lab.shape[1], c).to(dev)
    S = H.binary_similarity(lab, lab).to(dev)
    # a fine-tuned trunk trains under the loop's bf16 AMP and channels_last on CUDA (no-ops on the CPU)
    trainer = loop.Trainer(max_epochs=c.epochs, device=dev, progress=False, amp=c.image_trunk != "none")
    trainer.prepare(model)
    task = SSAHTask(model, X.to(dev), Y.to(dev), lab.to(dev), S, gen)
    trainer.fit(task)
    return model.eval()


def run_ssah_many(
    features: cm.CrossModalFeatures,
    config: SSAHConfig,
    seeds: Sequence[int],
    name: str = "SSAH",
    device: str = "auto",
    checkpoint=None,
    top_n: Sequence[int] = (100, 500, 1000),
) -> list[cm.HashingRun]:
    """SSAH trained on ``features``' training part at each of ``seeds`` and evaluated like the chapter's runs
    (:class:`~xmr_lib.chapters.ch03.crossmodal.HashingRun`, both directions; no modality probe). Finished runs
    are stored in and reloaded from ``checkpoint``."""
    return cm.run_baseline_many(train_ssah, features, config, seeds, name, device, checkpoint, top_n)
