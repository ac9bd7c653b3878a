"""Two more common latent spaces of thesis chapter 8 §8.3 beside CCA, semantic matching, ranking and the adversary:

- **joint embedding** (Eq. 8.1, ``J = 𝒥(x, y)``, §8.3.3a): the two modalities are fused into *one* representation
  by low-rank **bilinear pooling** (MLB, Kim et al. — the thesis's [336]: ``J = tanh(U x) ⊙ tanh(V t)``, the
  Hadamard product of two projections, a rank-r factorisation of the bilinear form ``xᵀ M t``) and a
  classification-based objective on J: a linear layer predicts whether the pair (x, t) is relevant (shares a class),
  binary cross-entropy over every image–text combination of a mini-batch. A joint space has no separate image and
  text vectors: retrieval scores every pair, ``s(x, t) = wᵀ(tanh(U x) ⊙ tanh(V t)) + b`` — for all pairs at once
  one matrix product ``(A · w) Bᵀ`` (:func:`bilinear_scores`).
- **auto-encoder common space** (§8.3.1a, Fig. 8.2(a) and (c): separate encoders, coordinated hidden codes and
  cross reconstruction — the correspondence auto-encoder): encoders ``E_I``, ``E_T`` map each modality to an l-d
  code, decoders ``D_I``, ``D_T`` reconstruct *both* modalities from either code, and a coordination term pulls the
  codes of a pair together::

      L = Σ_{a, b ∈ {I, T}} ‖D_b(E_a(x_a)) − x_b‖² / d_b  +  α ‖E_I(x_I) − E_T(x_T)‖²

  Unsupervised like CCA (it uses the pairing, never the labels); retrieval by Euclidean distance of the
  L2-normalised codes. Inputs are standardised with the training statistics.

Both train with :class:`xmr_lib.train.loop.Trainer` (step mode, the learning rate ÷10 at half of the run, as the
chapter's other objectives).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core.checks import check_2d, check_int, check_matrix
from xmr_lib.core.setup import resolve_device
from xmr_lib.retrieval.metrics import hamming_relevance, mean_average_precision
from xmr_lib.train import loop

__all__ = [
    "ShuffledPairsTask",
    "BilinearJointNet",
    "bilinear_scores",
    "CorrespondenceAutoencoder",
    "autoencoder_loss",
    "LatentSpaceConfig",
    "train_latent_space",
    "score_map",
    "run_latent_space",
]


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


class BilinearJointNet(nn.Module):
    """Joint embedding by low-rank bilinear pooling (Eq. 8.1 with MLB): ``J(x, t) = tanh(U(x)) ⊙ tanh(V(t))`` (r-d)
    and the relevance logit ``wᵀ J + b``; ``U``, ``V``: one hidden layer each (``in → hidden → rank``).

    Args:
        image_dim, text_dim: input sizes. hidden: width of each branch's hidden layer. rank: r. seed: initialisation.
    """

    def __init__(self, image_dim: int, text_dim: int, hidden: int = 128, rank: int = 64, seed: int = 0):
        super().__init__()
        for name, v in (("image_dim", image_dim), ("text_dim", text_dim), ("hidden", hidden), ("rank", rank)):
            check_int(v, name)
        torch.manual_seed(seed)
        self.image_dim, self.text_dim = image_dim, text_dim
        self.u, self.v = _mlp(image_dim, hidden, rank), _mlp(text_dim, hidden, rank)
        self.out = nn.Linear(rank, 1)

    def image_factor(self, x: torch.Tensor) -> torch.Tensor:
        """tanh(U x): (N, image_dim) → (N, r)."""
        return torch.tanh(self.u(check_2d(x, "x_image", self.image_dim)))

    def text_factor(self, t: torch.Tensor) -> torch.Tensor:
        """tanh(V t): (N, text_dim) → (N, r)."""
        return torch.tanh(self.v(check_2d(t, "x_text", self.text_dim)))

    def joint(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """J of Eq. 8.1 for paired rows: (N, r)."""
        return self.image_factor(x) * self.text_factor(t)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(N_i, N_t) relevance logits of every image–text combination (:func:`bilinear_scores`)."""
        return bilinear_scores(self.image_factor(x), self.text_factor(t), self.out.weight[0], self.out.bias[0])


def bilinear_scores(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | float = 0.0):
    """``s_ij = wᵀ(a_i ⊙ b_j) + bias`` for all pairs: ``(a · w) bᵀ + bias``.

    Args:
        a: (N_i, r) image factors. b: (N_t, r) text factors. w: (r,). bias: scalar.
    Returns:
        (N_i, N_t) scores.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or w.shape != (a.shape[1],):
        raise ValueError(
            f"a, b, w: expected (N_i, r), (N_t, r), (r,), got {tuple(a.shape)}, {tuple(b.shape)}, {tuple(w.shape)}"
        )
    return (a * w) @ b.T + bias


class CorrespondenceAutoencoder(nn.Module):
    """Encoders ``E_I: image_dim → hidden → latent``, ``E_T: text_dim → hidden → latent`` and decoders
    ``D_I: latent → hidden → image_dim``, ``D_T: latent → hidden → text_dim`` (Fig. 8.2(a) with the cross
    reconstruction of Fig. 8.2(c))."""

    def __init__(self, image_dim: int, text_dim: int, hidden: int = 128, latent: int = 32, seed: int = 0):
        super().__init__()
        for name, v in (("image_dim", image_dim), ("text_dim", text_dim), ("hidden", hidden), ("latent", latent)):
            check_int(v, name)
        torch.manual_seed(seed)
        self.image_dim, self.text_dim = image_dim, text_dim
        self.enc_image, self.enc_text = _mlp(image_dim, hidden, latent), _mlp(text_dim, hidden, latent)
        self.dec_image, self.dec_text = _mlp(latent, hidden, image_dim), _mlp(latent, hidden, text_dim)

    def codes(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E_I(x) (N_i, l), E_T(t) (N_t, l))."""
        return self.enc_image(check_2d(x, "x_image", self.image_dim)), self.enc_text(
            check_2d(t, "x_text", self.text_dim)
        )


def autoencoder_loss(model: CorrespondenceAutoencoder, x: torch.Tensor, t: torch.Tensor, alpha: float) -> torch.Tensor:
    """``Σ_{a,b} mean ‖D_b(E_a(x_a)) − x_b‖² / d_b + α mean ‖E_I(x) − E_T(t)‖²`` over paired rows (N, ·)."""
    zi, zt = model.codes(x, t)
    rec = 0.0
    for z in (zi, zt):
        rec = rec + F.mse_loss(model.dec_image(z), x) + F.mse_loss(model.dec_text(z), t)
    return rec + alpha * (zi - zt).pow(2).sum(1).mean()


@dataclass
class LatentSpaceConfig:
    """One training run of :func:`train_latent_space`. ``method``: ``"bilinear"`` (joint, supervised by "shares a
    class") or ``"autoencoder"`` (unsupervised). ``alpha``: the auto-encoder's coordination weight."""

    method: str = "bilinear"
    hidden: int = 128
    latent: int = 64  # rank r (bilinear) or code size l (auto-encoder)
    iterations: int = 500
    batch_size: int = 128
    lr: float = 2e-3
    lr_drop: float = 0.5
    alpha: float = 0.5

    def __post_init__(self):
        if self.method not in ("bilinear", "autoencoder"):
            raise ValueError(f"method: expected 'bilinear' or 'autoencoder', got {self.method!r}")
        for k in ("hidden", "latent", "iterations", "batch_size"):
            check_int(getattr(self, k), k)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr: expected a number > 0, got {self.lr!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha >= 0):
            raise ValueError(f"alpha: expected a number ≥ 0, got {self.alpha!r}")


class ShuffledPairsTask(loop.Task):
    """Step-mode base of the chapter's common-space trainers (this module's and :mod:`.cycle_space`'s): shuffled
    passes over ``n`` paired rows in batches of ``bs`` (a new permutation when a pass runs out, from ``seed``), Adam
    on ``params`` at ``lr``, lr ÷10 at step ``drop_at``. Batch indices are moved to ``device``."""

    def __init__(self, params, n: int, bs: int, lr: float, drop_at: int, seed: int, device=None):
        self.opt = torch.optim.Adam(params, lr=lr)
        self.n, self.bs, self.drop_at, self.device = n, bs, drop_at, device
        self.g = torch.Generator().manual_seed(seed)

    def batches(self, trainer, epoch):
        order, pos = torch.randperm(self.n, generator=self.g), 0
        while True:
            if pos + self.bs > self.n:
                order, pos = torch.randperm(self.n, generator=self.g), 0
            yield order[pos : pos + self.bs].to(self.device)
            pos += self.bs

    def on_step_start(self, trainer, idx):
        if trainer.global_step == self.drop_at:
            for pg in self.opt.param_groups:
                pg["lr"] = pg["lr"] / 10

    def optimizers(self, trainer, idx):
        return [self.opt]


class _LatentTask(ShuffledPairsTask):
    """Step-mode task: shuffled passes over the pairs, Adam, lr ÷10 at ``lr_drop``; ``hist["loss"]`` per step."""

    def __init__(self, model, config: LatentSpaceConfig, xi, xt, rel_labels, seed: int, device):
        drop_at = max(1, int(round(config.lr_drop * config.iterations)))
        super().__init__(model.parameters(), len(xi), min(config.batch_size, len(xi)), config.lr, drop_at, seed, device)
        self.model, self.c = model, config
        self.Xi, self.Xt = torch.from_numpy(xi).to(device), torch.from_numpy(xt).to(device)
        self.Y = None if rel_labels is None else torch.from_numpy(rel_labels).float().to(device)
        self.hist: dict[str, list[float]] = {"loss": []}
        model.train()

    def training_step(self, trainer, idx):
        x, t = self.Xi[idx], self.Xt[idx]
        if self.c.method == "autoencoder":
            return autoencoder_loss(self.model, x, t, self.c.alpha)
        y = self.Y[idx]
        rel = ((y @ y.T) > 0).float()  # (B, B): image i and text j share a class
        pos = rel.sum().clamp(min=1.0)
        weight = torch.where(rel > 0, (rel.numel() - pos) / pos, torch.ones_like(rel))  # balance the two classes
        return F.binary_cross_entropy_with_logits(self.model(x, t), rel, weight=weight)

    def on_step_end(self, trainer, idx, loss):
        self.hist["loss"].append(float(loss.detach()))


def train_latent_space(
    image_features: Any,
    text_features: Any,
    labels: Any,
    config: LatentSpaceConfig | None = None,
    *,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[nn.Module, dict, tuple[np.ndarray, np.ndarray]]:
    """Train a :class:`BilinearJointNet` or :class:`CorrespondenceAutoencoder` on standardised paired features.

    Args:
        image_features: (n, Di); text_features: (n, Dt); labels: (n,) ids or (n, c) multi-hot (unused by the
            auto-encoder). config: :class:`LatentSpaceConfig`. seed: initialisation and batches.
    Returns:
        ``(model in eval mode, history {"loss": [...]}, (mean, sd) of each modality as a pair of 2-tuples)``.
    """
    c = config or LatentSpaceConfig()
    xi = check_matrix(image_features, "image_features", dtype=np.float32)
    xt = check_matrix(text_features, "text_features", dtype=np.float32)
    lab = np.asarray(labels)
    if len(xt) != len(xi) or lab.shape[0] != len(xi):
        raise ValueError(
            f"text_features, labels: expected {len(xi)} rows like image_features, got {xt.shape} and {lab.shape}"
        )
    stats = tuple((x.mean(0), x.std(0) + 1e-6) for x in (xi, xt))
    xi, xt = ((x - m) / s for x, (m, s) in zip((xi, xt), stats))
    dev = torch.device(resolve_device(device))
    torch.manual_seed(seed)
    if c.method == "bilinear":
        model = BilinearJointNet(xi.shape[1], xt.shape[1], c.hidden, c.latent, seed)
        y = np.eye(int(lab.max()) + 1, dtype=np.float32)[lab] if lab.ndim == 1 else (lab > 0).astype(np.float32)
    else:
        model, y = CorrespondenceAutoencoder(xi.shape[1], xt.shape[1], c.hidden, c.latent, seed), None
    model = model.to(dev)
    task = _LatentTask(model, c, xi.astype(np.float32), xt.astype(np.float32), y, seed, dev)
    loop.Trainer(max_steps=c.iterations, device=dev, progress=False, desc=c.method).fit(task)
    model.eval()
    return model, task.hist, stats


@torch.no_grad()
def _scores(model, xi: np.ndarray, xt: np.ndarray, stats) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(n_i, n_t) similarity of every test pair and the representations shown (factors or codes)."""
    dev = next(model.parameters()).device
    a, b = (torch.from_numpy(((x - m) / s).astype(np.float32)).to(dev) for x, (m, s) in zip((xi, xt), stats))
    if isinstance(model, BilinearJointNet):
        fa, fb = model.image_factor(a), model.text_factor(b)
        s = bilinear_scores(fa, fb, model.out.weight[0], model.out.bias[0])
        return s.double().cpu().numpy(), (fa.cpu().numpy(), fb.cpu().numpy())
    zi, zt = (F.normalize(z, dim=1) for z in model.codes(a, b))
    s = -torch.cdist(zi.double(), zt.double())
    return s.cpu().numpy(), (zi.cpu().numpy(), zt.cpu().numpy())


def score_map(scores: np.ndarray, image_labels: Any, text_labels: Any | None = None) -> dict[str, float]:
    """Eq. (3) mAP of a (n_i, n_t) score matrix (higher = closer), relevance = shares a label:
    ``{"i2t", "t2i", "average"}``."""
    s = np.asarray(scores, np.float64)
    li = np.asarray(image_labels)
    lt = li if text_labels is None else np.asarray(text_labels)
    if s.ndim != 2 or s.shape != (li.shape[0], lt.shape[0]):
        raise ValueError(f"scores: expected shape ({li.shape[0]}, {lt.shape[0]}), got {s.shape}")
    rel = hamming_relevance(li, lt)
    i2t, t2i = mean_average_precision(s, rel), mean_average_precision(s.T, rel.T)
    return {"i2t": float(i2t), "t2i": float(t2i), "average": float((i2t + t2i) / 2)}


def run_latent_space(split, config: LatentSpaceConfig, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Train on ``split``'s training pairs (a ``common_space.CrossModalSplit``), evaluate on its test pairs:
    ``{"i2t", "t2i", "average", "seconds", "model", "history", "test_repr"}``."""
    t0 = time.time()
    model, hist, stats = train_latent_space(
        split.train_image, split.train_text, split.train_labels, config, seed=seed, device=device
    )
    s, reprs = _scores(model, split.test_image, split.test_text, stats)
    out: dict[str, Any] = score_map(s, split.test_labels)
    out.update(seconds=time.time() - t0, model=model, history=hist, test_repr=reprs)
    return out
