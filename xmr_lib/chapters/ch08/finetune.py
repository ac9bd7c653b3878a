"""The paper's own experiment (§IV.A): ResNet-101 fine-tuned from its fourth block, the new classifier initialised
from the source classes (§III.B) or at random, on the authors' train / test images.

Pascal, Bost & Huet (CBMI 2019) replace the last fully connected layer of an ImageNet ResNet-101 with one for the N
target classes and "train weights from the fourth block (included) to the end, and freeze the rest" (§IV.A). Here:

- :func:`source_resnet` — the ResNet-101 trunk (``xmr_lib.encoders.backbones.backbone``; ``pretrained=False`` for
  the ``tiny`` CI run) and its 1000-way classifier, the source of the initialisations;
- :class:`Layer4Classifier` — frozen stem + ``layer1``–``layer3`` (BatchNorm in eval mode, no gradient), trainable
  ``layer4`` and a new ``fc`` (dropout 0.75 on its input, §IV.A);
- :func:`paper_split` — the authors' ``train/`` and ``test/`` folders kept as they are (never pooled);
- :class:`FinetuneTask` / :func:`fine_tune` — Adam (lr 1e-3, β 0.9 / 0.999, ε 1e-8, batch 64, §IV.A) through
  :class:`xmr_lib.train.loop.Trainer` (AMP bf16 and ``channels_last`` on CUDA), random ``image_size`` crops of the
  ``image_size·256/224`` centre square for training, the centre crop for testing; the macro F-score on the test
  images at iteration 0, every ``eval_every`` steps and at the end ("First" and "Best" of Table II);
- :func:`data_reduction` — Table II: each number of images per class × each initialisation.

Shapes: ``N`` target classes, ``M`` = 1000 source classes, ``D`` = 2048 features, ``n`` images.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from xmr_lib.chapters.ch08 import transfer
from xmr_lib.core.checks import check_class_ids
from xmr_lib.core.setup import resolve_device
from xmr_lib.encoders import backbones
from xmr_lib.train import loop

TRAINABLE = ("layer4", "fc")
"""The parameters the paper trains (§IV.A): the fourth ResNet block and the new classifier."""


def source_resnet(pretrained: bool = True, weights=None, device: str = "auto") -> backbones.FeatureTrunk:
    """The source network: ResNet-101 (torchvision layout), in eval mode, its ``head`` the 1000-way classifier.

    ``pretrained=True`` reads the ImageNet weights from disk (never downloaded: without them the FileNotFoundError of
    :func:`xmr_lib.encoders.backbones.backbone` names ``python -m data_scripts fetch resnet101``); ``False`` gives
    random weights (the ``tiny`` run)."""
    return backbones.backbone("resnet101", pretrained=pretrained, weights=weights, device=device)


class Layer4Classifier(nn.Module):
    """ResNet-101 with a new N-way classifier: ``frozen`` (stem, layer1–layer3) → ``layer4`` → global average pool →
    dropout → ``fc``. The frozen part runs without gradient and stays in eval mode (its BatchNorm statistics are the
    source network's) whatever ``train()`` says; ``layer4``'s BatchNorm trains as in the paper's fine-tuning.

    Args:
        trunk: a ResNet :class:`xmr_lib.encoders.backbones.FeatureTrunk` (copied: the source is left untouched).
        weight, bias: (N, D) and (N,) initial classifier (e.g. :func:`xmr_lib.chapters.ch08.transfer.similarity_init`).
        dropout: dropout probability on the classifier input during training.
    """

    def __init__(self, trunk: backbones.FeatureTrunk, weight, bias, dropout: float = 0.75):
        super().__init__()
        net = trunk.net
        if not hasattr(net, "layer4"):
            raise ValueError(f"trunk: expected a ResNet (with layer4), got {trunk.name!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
        w = torch.as_tensor(np.asarray(weight), dtype=torch.float32)
        b = torch.as_tensor(np.asarray(bias), dtype=torch.float32)
        D = net.fc.in_features
        if w.ndim != 2 or w.shape[1] != D or b.shape != (w.shape[0],):
            raise ValueError(f"weight, bias: expected (N, {D}) and (N,), got {tuple(w.shape)} and {tuple(b.shape)}")
        net = copy.deepcopy(net)
        self.frozen = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
        self.layer4 = net.layer4
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(D, w.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(w)
            self.fc.bias.copy_(b)
        for p in self.frozen.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "Layer4Classifier":
        super().train(mode)
        self.frozen.eval()  # frozen BatchNorm keeps the source statistics
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, D) pooled ``layer4`` features."""
        with torch.no_grad():
            h = self.frozen(x)
        return self.layer4(h).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.features(x)))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------------------------
# the authors' images


def paper_split(root, wnids: Sequence[str]) -> dict[str, tuple[list[Path], np.ndarray]]:
    """The authors' own split (§IV.B: 900 training and 100 test images per class), kept as released:
    ``{"train": (files, labels), "test": (files, labels)}`` from ``<root>/{train,test}/<wnid>/``
    (:func:`xmr_lib.chapters.ch08.transfer.imagenet_folder_targets`; ``root`` = ``<data_root>/pascal2019_targets``)."""
    return {s: transfer.imagenet_folder_targets(root, wnids, s) for s in ("train", "test")}


def load_images(files: Sequence, image_size: int, train: bool, chunk: int = 256) -> torch.Tensor:
    """Files → a normalised (n, 3, S, S) float16 batch (half the memory; each step casts its batch back), S =
    ``image_size·256/224`` for training (the centre square of the image resized to shorter side S, random-cropped
    per step by :func:`random_crop`) or ``image_size`` for testing (the paper's centre crop, §IV.A). ImageNet
    normalisation (the torchvision ResNet's). Decoded ``chunk`` files at a time."""
    size = int(image_size)
    resize = round(size * 256 / 224)
    files = list(files)
    out = torch.empty((len(files), 3, resize if train else size, resize if train else size), dtype=torch.float16)
    for s in range(0, len(files), chunk):
        out[s : s + chunk] = backbones.preprocess(
            files[s : s + chunk],
            resize if train else size,
            resize=resize,
            mean=backbones.IMAGENET_MEAN,
            std=backbones.IMAGENET_STD,
            rounding="floor",
        ).half()
    return out


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size``×``size`` of (B, 3, S, S) images (offset ⌊(S − size)/2⌋)."""
    o = (x.shape[-1] - int(size)) // 2
    return x[..., o : o + int(size), o : o + int(size)]


def random_crop(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random ``size``×``size`` crop per image of ``x`` (B, 3, S, S), offsets drawn from ``gen``."""
    B, C, S, _ = x.shape
    if size > S:
        raise ValueError(f"size: {size} px crop of {S} px images")
    off = torch.randint(0, S - size + 1, (B, 2), generator=gen)
    span = torch.arange(size)
    rows = (off[:, 0, None] + span)[:, None, :, None].expand(B, C, size, S)
    cols = (off[:, 1, None] + span)[:, None, None, :].expand(B, C, size, size)
    return x.gather(2, rows).gather(3, cols)


@torch.no_grad()
def pooled_features(trunk: backbones.FeatureTrunk, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """(n, D) globally average-pooled trunk features of a preprocessed batch (the source classifier's input)."""
    dev = trunk.device
    out = [
        trunk(images[s : s + batch_size].to(dev).float()).mean(dim=(2, 3)).float().cpu()
        for s in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, trunk.out_channels), np.float32)


def source_classifier(trunk: backbones.FeatureTrunk) -> tuple[np.ndarray, np.ndarray]:
    """(M, D) weights and (M,) biases of the source network's classifier."""
    return (
        trunk.head.weight.detach().cpu().numpy().astype(np.float32),
        trunk.head.bias.detach().cpu().numpy().astype(np.float32),
    )


# ---------------------------------------------------------------------------------------------------------------
# fine-tuning


@dataclass
class FinetuneResult:
    """One fine-tuning run: ``iterations`` (T,) at which the test set was scored (0 = before training), ``fscore``
    (T,) macro F-score there, ``losses`` (steps,) training loss of every step, ``model`` the trained network."""

    iterations: np.ndarray
    fscore: np.ndarray
    losses: np.ndarray
    model: Layer4Classifier = field(repr=False)

    @property
    def first(self) -> float:
        """F-score at iteration 0 (Table II's "First")."""
        return float(self.fscore[0])

    @property
    def best(self) -> float:
        """Best F-score registered on the test set (Table II's "Best")."""
        return float(self.fscore.max())


class FinetuneTask(loop.Task):
    """Step-mode :class:`xmr_lib.train.loop.Task`: batches cycle through shuffled passes over the training images
    (a short rest skipped), each image random-cropped; cross-entropy of the N-way output; Adam on ``layer4`` and
    ``fc``; test macro F-score at construction, every ``eval_every`` steps and after the last."""

    def __init__(self, model, Xtr, ytr, Xte, yte, *, iterations, batch_size, lr, eval_every, image_size, gen):
        self.model, self.gen = model, gen
        self.xtr, self.ytr = Xtr, torch.as_tensor(ytr, dtype=torch.long)
        self.xte, self.yte = Xte, np.asarray(yte)
        self.N = model.fc.out_features
        self.bs, self.size = min(int(batch_size), len(Xtr)), int(image_size)
        self.iterations, self.eval_every, self.lr = int(iterations), int(eval_every), float(lr)
        self.its, self.fs, self.losses = [], [], []
        self.perm, self.pos = None, len(Xtr)

    def on_fit_start(self, trainer: loop.Trainer) -> None:
        self.net = trainer.prepare(self.model, sync_batchnorm=False)
        self.opt = torch.optim.Adam(self.model.trainable_parameters(), lr=self.lr, betas=(0.9, 0.999), eps=1e-8)
        self.evaluate(trainer, 0)

    @torch.no_grad()
    def evaluate(self, trainer: loop.Trainer, it: int) -> None:
        was = self.model.training
        self.model.eval()
        pred = []
        for s in range(0, len(self.xte), 64):
            x = trainer.to_device(self.xte[s : s + 64].float())
            with torch.autocast(device_type="cuda", dtype=trainer.amp_dtype, enabled=trainer.amp):
                pred.append(self.net(x).argmax(1).cpu())
        self.model.train(was)
        self.its.append(it)
        self.fs.append(transfer.macro_fscore(torch.cat(pred).numpy(), self.yte, self.N))

    def batches(self, trainer: loop.Trainer, epoch: int):
        n = len(self.xtr)
        while True:
            if self.pos + self.bs > n:
                self.perm, self.pos = torch.randperm(n, generator=self.gen), 0
            idx = self.perm[self.pos : self.pos + self.bs]
            self.pos += self.bs
            yield idx

    def training_step(self, trainer: loop.Trainer, idx) -> torch.Tensor:
        self.model.train()
        x = trainer.to_device(random_crop(self.xtr[idx].float(), self.size, self.gen))
        logits = self.net(x).float()
        return nn.functional.cross_entropy(logits, trainer.to_device(self.ytr[idx]))

    def optimizers(self, trainer: loop.Trainer, idx) -> list:
        return [self.opt]

    def on_step_end(self, trainer: loop.Trainer, idx, loss) -> None:
        self.losses.append(loss.detach())
        it = trainer.global_step
        if it % self.eval_every == 0 or it == self.iterations:
            self.evaluate(trainer, it)

    def generators(self) -> dict:
        return {"batches": self.gen}

    def result(self) -> FinetuneResult:
        return FinetuneResult(
            iterations=np.array(self.its),
            fscore=np.array(self.fs, dtype=np.float64),
            losses=np.array([float(v) for v in self.losses]),
            model=self.model,
        )


def fine_tune(
    trunk: backbones.FeatureTrunk,
    weight,
    bias,
    train_images: torch.Tensor,
    train_labels,
    test_images: torch.Tensor,
    test_labels,
    *,
    iterations: int = 3000,
    batch_size: int = 64,
    lr: float = 1e-3,
    dropout: float = 0.75,
    eval_every: int = 50,
    image_size: int = 224,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune a copy of ``trunk``'s ``layer4`` and a new classifier initialised to ``(weight, bias)`` (§IV.A).

    Args:
        trunk: the source ResNet (:func:`source_resnet`), left untouched.
        weight, bias: (N, D), (N,) initial classifier.
        train_images: (n, 3, S, S) from :func:`load_images` (``train=True``); train_labels: (n,) in [0, N).
        test_images: (m, 3, image_size, image_size) (``train=False``); test_labels: (m,).
        iterations, batch_size, lr, dropout, eval_every: Adam steps, images per step, learning rate, dropout on the
            classifier input, steps between two test evaluations (and at 0 and the end).
        image_size: the training crop. seed: the batch order and crops. device: ``"auto"`` picks CUDA (then bf16
            AMP and channels_last through the training loop).

    Returns:
        :class:`FinetuneResult`.
    """
    n_classes = np.asarray(weight).shape[0]
    ytr = check_class_ids(train_labels, "train_labels", n=len(train_images), n_classes=n_classes)
    yte = check_class_ids(test_labels, "test_labels", n=len(test_images), n_classes=n_classes)
    if len(ytr) == 0 or len(yte) == 0:
        raise ValueError(f"train_images, test_images: need images, got {len(ytr)} and {len(yte)}")
    if int(iterations) < 0 or int(eval_every) < 1 or int(batch_size) < 1:
        raise ValueError(
            f"iterations, eval_every, batch_size: expected >= 0, >= 1, >= 1; got {iterations}, "
            f"{eval_every}, {batch_size}"
        )
    model = Layer4Classifier(trunk, weight, bias, dropout)
    task = FinetuneTask(
        model,
        train_images,
        ytr,
        test_images,
        yte,
        iterations=iterations,
        batch_size=batch_size,
        lr=lr,
        eval_every=eval_every,
        image_size=image_size,
        gen=torch.Generator().manual_seed(int(seed)),
    )
    dev = torch.device(resolve_device(device))
    loop.Trainer(max_steps=int(iterations), device=dev, amp=True, progress=progress, desc="fine-tune layer4").fit(task)
    return task.result()


# ---------------------------------------------------------------------------------------------------------------
# Table II


def initial_classifiers(
    source_weight, source_bias, sims: Mapping[str, np.ndarray], k, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four initial classifiers of Table II: ``"random"`` (Xavier) and one per similarity with K = ``k`` (an int,
    or name → per-target K): :func:`xmr_lib.chapters.ch08.transfer.initial_heads`."""
    return transfer.initial_heads(source_weight, source_bias, sims, k, seed=seed)


def data_reduction(
    trunk: backbones.FeatureTrunk,
    train_images: torch.Tensor,
    train_labels,
    test_images: torch.Tensor,
    test_labels,
    *,
    shots: Sequence[int],
    semantic_sims: Mapping[str, np.ndarray],
    k: Mapping[str, Any] | int,
    source_logits: np.ndarray,
    seed: int = 0,
    **train_kw,
) -> tuple[pd.DataFrame, dict]:
    """Table II with the paper's fine-tuning: for each number of images per class (nested subsets of the training
    images), the inference similarity from the source network's (n, M) ``source_logits`` on those images, the
    semantic ones unchanged, and four runs of :func:`fine_tune` (Xavier and the three initialisations, K = ``k``).

    Returns:
        rows ``seed, shots, method, first, best`` (as :func:`xmr_lib.chapters.ch08.transfer.data_reduction`) and
        ``{(shots, method): FinetuneResult}``.
    """
    W, b = source_classifier(trunk)
    ytr = np.asarray(train_labels)
    n_classes = int(max(ytr.max(), np.asarray(test_labels).max()) + 1)
    rows, runs = [], {}
    for s in shots:
        idx = transfer.few_shot_indices(ytr, int(s), seed, n_classes=n_classes)
        sims = {"inference": transfer.inference_similarity(source_logits[idx], ytr[idx], n_classes), **semantic_sims}
        heads = initial_classifiers(W, b, sims, k, seed)
        for m, (w0, b0) in heads.items():
            r = fine_tune(trunk, w0, b0, train_images[idx], ytr[idx], test_images, test_labels, seed=seed, **train_kw)
            runs[int(s), m] = r
            rows.append({"seed": seed, "shots": int(s), "method": m, "first": r.first, "best": r.best})
    return pd.DataFrame(rows), runs


def paper_experiment(
    data_root,
    wnids: Sequence[str],
    types: Sequence[str],
    semantic_sims: Mapping[str, np.ndarray],
    *,
    seeds: Sequence[int],
    shots: Sequence[int],
    k_values: Sequence[int],
    train_per_class: int,
    val_per_class: int,
    image_size: int = 224,
    pretrained: bool = True,
    device: str = "auto",
    progress: bool = True,
    **train_kw,
) -> dict[str, Any]:
    """Table II as the paper ran it: ResNet-101, ``layer4`` + ``fc`` fine-tuned, on the authors' train / test split.

    Per seed: ``train_per_class`` training and ``val_per_class`` validation images per class drawn from the
    authors' ``train/`` folder (disjoint), the authors' ``test/`` folder as the test set (all of it); K per target
    type chosen on the validation images at iteration 0 (Fig. 3: the source network's pooled features and the
    initial classifier, exactly the fine-tuned model before its first step); then :func:`data_reduction`.

    Args:
        data_root: the folder holding ``pascal2019_targets/{train,test}/<wnid>/``. wnids, types: the N target
            synsets and their types (§IV.B). semantic_sims: ``{"wordnet": (N, M), "wordvec": (N, M)}``.
        seeds, shots, k_values, train_per_class, val_per_class, image_size: as the chapter's knobs.
        pretrained: the ImageNet ResNet-101 (``False``: random weights, the ``tiny`` run).
        train_kw: :func:`fine_tune`'s iterations, batch_size, lr, dropout, eval_every.

    Returns:
        ``{"reduction": rows seed/shots/method/first/best, "best_k": (seed, name) → (N,) K, "runs": (seed, shots,
        method) → FinetuneResult, "n_train": images per class in the authors' train folder, "n_test": …}``.
    """
    trunk = source_resnet(pretrained=pretrained, device=device)
    split = paper_split(Path(data_root) / "pascal2019_targets", wnids)
    (ftr, ytr), (fte, yte) = split["train"], split["test"]
    W, b = source_classifier(trunk)
    N = len(wnids)
    frames, best_k, runs = [], {}, {}
    xte = load_images(fte, image_size, train=False)
    for seed in seeds:
        tr, rest = transfer.split_per_class(ytr, int(train_per_class), seed)
        va = rest[transfer.few_shot_indices(ytr[rest], int(val_per_class), seed)]
        xtr = load_images([ftr[i] for i in tr], image_size, train=True)
        logits = pooled_features(trunk, centre_crop(xtr, image_size)) @ W.T + b  # the source network's outputs
        fva = pooled_features(trunk, load_images([ftr[i] for i in va], image_size, train=False))
        sims = {"inference": transfer.inference_similarity(logits, ytr[tr], N), **semantic_sims}
        for name, S in sims.items():
            sweep = transfer.k_sweep(W, b, S, k_values, fva, ytr[va], types)
            best_k[seed, name] = transfer.best_k_per_group(sweep, types)
        k = {name: best_k[seed, name] for name in sims}
        df, r = data_reduction(
            trunk,
            xtr,
            ytr[tr],
            xte,
            yte,
            shots=shots,
            semantic_sims=semantic_sims,
            k=k,
            source_logits=logits,
            seed=seed,
            image_size=image_size,
            device=device,
            progress=progress,
            **train_kw,
        )
        frames.append(df)
        runs.update({(seed, *key): v for key, v in r.items()})
    return {
        "reduction": pd.concat(frames, ignore_index=True),
        "best_k": best_k,
        "runs": runs,
        "n_train": int(np.bincount(ytr).min()),
        "n_test": int(np.bincount(yte).min()),
    }
