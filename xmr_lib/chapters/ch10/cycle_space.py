"""Thesis ch. 8's cycle-consistent common space (§8.3.3b: "a forward cycle F(G(X)) ≈ X and a backward cycle
G(F(Y)) ≈ Y", G: X → Y and F: Y → X), beside the auto-encoder of :mod:`xmr_lib.chapters.ch10.latent_spaces`.

Two translators on standardised features: ``G`` maps an image feature into the text-feature space and ``F`` a text
feature into the image-feature space (one hidden layer each; ``hidden=0``: linear maps). With pairs available (as
for CCA and the auto-encoder: the pairing, never the labels) the objective is the paired translation plus the two
cycles, each squared error divided by its space's dimension::

    L = ‖G(x) − y‖² / d_T + ‖F(y) − x‖² / d_I  +  w_cycle (‖F(G(x)) − x‖² / d_I + ‖G(F(y)) − y‖² / d_T)

Retrieval in the query's translated space: an image query ranks the texts by the Euclidean distance between
``G(x)`` and each text ``y`` (i→t); a text query ranks the images by ``‖F(y) − x‖`` (t→i).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.chapters.ch10 import common_space as cs
from xmr_lib.chapters.ch10 import latent_spaces as lsp
from xmr_lib.core.checks import check_int, check_matrix
from xmr_lib.retrieval.metrics import hamming_relevance, mean_average_precision
from xmr_lib.train import loop

__all__ = ["CycleNet", "cycle_loss", "train_cycle_space", "run_cycle_space"]


def _map(i: int, h: int, o: int) -> nn.Module:
    return nn.Linear(i, o) if h == 0 else nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


class CycleNet(nn.Module):
    """The two translators: ``g`` (image_dim → text_dim) and ``f`` (text_dim → image_dim).

    Args:
        image_dim, text_dim: feature sizes. hidden: hidden width of each map (0: a linear map). seed: initialisation.
    """

    def __init__(self, image_dim: int, text_dim: int, hidden: int = 128, seed: int = 0):
        super().__init__()
        check_int(image_dim, "image_dim"), check_int(text_dim, "text_dim"), check_int(hidden, "hidden", 0)
        torch.manual_seed(seed)
        self.image_dim, self.text_dim = image_dim, text_dim
        self.g, self.f = _map(image_dim, hidden, text_dim), _map(text_dim, hidden, image_dim)


def cycle_loss(net: CycleNet, x: torch.Tensor, y: torch.Tensor, w_cycle: float = 1.0) -> dict[str, torch.Tensor]:
    """The terms of the objective for paired rows ``x`` (n, d_I), ``y`` (n, d_T): ``{"translation", "forward",
    "backward", "loss"}`` — translation ``‖G(x) − y‖²/d_T + ‖F(y) − x‖²/d_I``, forward cycle ``‖F(G(x)) − x‖²/d_I``,
    backward cycle ``‖G(F(y)) − y‖²/d_T`` (means over the rows) and ``loss = translation + w_cycle (forward +
    backward)``."""
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or x.shape[1] != net.image_dim or y.shape[1] != net.text_dim:
        raise ValueError(
            f"x, y: expected paired (n, {net.image_dim}) and (n, {net.text_dim}), got {tuple(x.shape)}, "
            f"{tuple(y.shape)}"
        )
    gx, fy = net.g(x), net.f(y)
    se = lambda a, b: ((a - b) ** 2).mean(1).mean()  # noqa: E731  (‖a − b‖² / d, mean over rows)
    out = {"translation": se(gx, y) + se(fy, x), "forward": se(net.f(gx), x), "backward": se(net.g(fy), y)}
    out["loss"] = out["translation"] + float(w_cycle) * (out["forward"] + out["backward"])
    return out


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu, sd = train.mean(0), train.std(0) + 1e-6
    return [((a - mu) / sd).astype(np.float32) for a in (train, *others)]


class _CycleTask(lsp.ShuffledPairsTask):
    """Step-mode task of the one training loop: shuffled passes over the pairs, Adam on :func:`cycle_loss`, lr ÷10
    at half of the run (as the chapter's other objectives); each term's value per step in ``hist``."""

    def __init__(
        self,
        net: CycleNet,
        xi: torch.Tensor,
        xt: torch.Tensor,
        iterations: int,
        bs: int,
        lr: float,
        w_cycle: float,
        seed: int,
    ):
        super().__init__(net.parameters(), len(xi), bs, lr, max(1, iterations // 2), seed)
        self.net, self.xi, self.xt, self.w_cycle = net, xi, xt, float(w_cycle)
        self.hist: dict[str, list[float]] = {"loss": [], "forward": [], "backward": []}
        self._terms: dict[str, torch.Tensor] = {}

    def training_step(self, trainer, idx):
        self._terms = cycle_loss(self.net, self.xi[idx], self.xt[idx], self.w_cycle)
        return self._terms["loss"]

    def on_step_end(self, trainer, idx, loss):
        for k in self.hist:
            self.hist[k].append(float(self._terms[k].detach()))


def train_cycle_space(
    image_features: Any,
    text_features: Any,
    *,
    hidden: int = 128,
    iterations: int = 300,
    batch_size: int = 128,
    lr: float = 2e-3,
    w_cycle: float = 1.0,
    seed: int = 0,
) -> tuple[CycleNet, dict[str, list[float]]]:
    """Adam on :func:`cycle_loss` over mini-batches of standardised pairs, through the one training loop
    (:class:`xmr_lib.train.loop.Trainer`; CPU; lr ÷10 at half of the run, as the chapter's other objectives).

    Args:
        image_features: (n, d_I); text_features: (n, d_T), row i of each a pair; already standardised
            (:func:`run_cycle_space` does it).
    Returns:
        ``(net in eval mode, {"loss": [...], "forward": [...], "backward": [...]})``, one value per iteration.
    """
    xi = torch.from_numpy(check_matrix(image_features, "image_features", dtype=np.float32))
    xt = torch.from_numpy(check_matrix(text_features, "text_features", dtype=np.float32))
    if len(xi) != len(xt):
        raise ValueError(f"text_features: expected {len(xi)} rows (one per image), got {tuple(xt.shape)}")
    iterations, bs = check_int(iterations, "iterations"), min(check_int(batch_size, "batch_size"), len(xi))
    net = CycleNet(xi.shape[1], xt.shape[1], hidden, seed)
    task = _CycleTask(net, xi, xt, iterations, bs, lr, w_cycle, seed)
    loop.Trainer(max_steps=iterations, device="cpu", progress=False, desc="cycle").fit(task)
    return net.eval(), task.hist


def run_cycle_space(split: cs.CrossModalSplit, seed: int = 0, **train_kw) -> dict[str, Any]:
    """Train on a split's standardised training pairs, evaluate on its test pairs (i→t in the text space through G,
    t→i in the image space through F; Eq. 3 mAP, relevance = a shared label): ``{"i2t", "t2i", "average",
    "seconds", "model", "history"}``. ``train_kw``: options of :func:`train_cycle_space`."""
    t0 = time.time()
    tri, tei = _standardise(split.train_image, split.test_image)
    trt, tet = _standardise(split.train_text, split.test_text)
    net, hist = train_cycle_space(tri, trt, seed=seed, **train_kw)
    with torch.no_grad():
        gx, fy = net.g(torch.from_numpy(tei)).numpy(), net.f(torch.from_numpy(tet)).numpy()
    rel = hamming_relevance(split.test_labels, split.test_labels)
    i2t = mean_average_precision(-cs.euclidean_distances(gx, tet), rel)
    t2i = mean_average_precision(-cs.euclidean_distances(fy, tei), rel.T)
    return {
        "i2t": float(i2t),
        "t2i": float(t2i),
        "average": float((i2t + t2i) / 2),
        "seconds": time.time() - t0,
        "model": net,
        "history": hist,
    }
