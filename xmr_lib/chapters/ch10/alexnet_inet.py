"""The paper's I_Net (ICME 2017 §2.1, §3.2): an ImageNet AlexNet (torchvision's, the nearest to Krizhevsky et al.'s)
**fine-tuned** on the dataset's images, with the latent layer I_fc inserted between fc7 and the last layer; T_Net
``text_dim → 4096 → l → c`` on LDA topics; SGD with the paper's learning rates (0.01 new layers, 0.001 pre-trained
layers, both ÷10 at half of the run), 256 pairs per mini-batch, images resized to 256 × 256, random 227 × 227 crops
and horizontal flips in training (the centre crop at test time), new layers drawn from N(0, 0.01²).

Also the **paper's features** for Table 3's baselines: 4096-d fc7 of the pre-trained (not fine-tuned) AlexNet
(§4.2: "the visual feature of one image is 4096-dimensional vector extracted by the pre-trained AlexNet") —
:func:`alexnet_fc7_split`; the per-dataset CCA / SM / T-V CCA targets apply only to runs on these features.

Pre-trained weights are never downloaded here: :func:`alexnet` finds ``alexnet-owt-7be5be79.pth`` with
:func:`xmr_lib.core.paths.find_weights` (``python -m data_scripts fetch alexnet`` puts it there); ``pretrained=False``
(the ``tiny`` knob) gives random weights, for CI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.chapters.ch10 import common_space as cs
from xmr_lib.core import paths
from xmr_lib.core.checks import check_int
from xmr_lib.core.setup import resolve_device
from xmr_lib.data import registry as data
from xmr_lib.encoders.backbones import IMAGENET_MEAN, IMAGENET_STD, load_weights_file, resize_image
from xmr_lib.train import loop

__all__ = [
    "alexnet",
    "ImagePairs",
    "image_pairs",
    "AlexNetIsomorphicNet",
    "FinetuneConfig",
    "finetune_isomorphic",
    "alexnet_fc7_split",
]

FC7_NAME = "AlexNet fc7 (ImageNet, frozen)"


def alexnet(pretrained: bool = True, weights: str | Path | None = None) -> nn.Module:
    """torchvision's AlexNet; ImageNet weights from disk when ``pretrained`` (FileNotFoundError naming the fetch
    command otherwise), random weights when not."""
    import torchvision

    net = torchvision.models.alexnet(weights=None)  # weights=None: torchvision never downloads
    if pretrained or weights is not None:
        net.load_state_dict(load_weights_file(paths.find_weights("alexnet", weights)), strict=True)
    return net


@dataclass
class ImagePairs:
    """Images (uint8 (n, 3, S, S), S = the resize side) with their text features and labels, train and test."""

    train_images: torch.Tensor
    train_text: np.ndarray
    train_labels: np.ndarray
    test_images: torch.Tensor
    test_text: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _load_images(paths_: list[str], side: int) -> torch.Tensor:
    """Files → (n, 3, side, side) uint8, each squashed to side × side (the paper: "normalized to 256 × 256")."""
    arr = np.stack([resize_image(p, side, fit="squash") for p in paths_]) if paths_ else np.zeros((0, side, side, 3))
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2))).to(torch.uint8)


def image_pairs(
    name: str,
    root: str | Path,
    *,
    resize: int = 256,
    text_features: str = "lda",
    n_topics: int = 100,
    seed: int = 0,
    protocol: str = "paper",
    max_vocab: int = 20000,
    lda_iter: int = 20,
) -> ImagePairs:
    """Wikipedia / Pascal Sentence / VOC 2007 from the converted layout (``python -m data_scripts fetch NAME --root
    ROOT``): every image decoded and squashed to ``resize`` × ``resize`` (uint8, in memory), the texts (VOC: the
    image's tags) as LDA topics fitted on the training documents, the paper's split
    (:func:`common_space._paper_split`); labels (n,) class ids, or (n, 20) multi-hot for VOC 2007
    (:func:`common_space.pair_labels`).

    Raises:
        ValueError for a dataset without a converter or a set without captions; FileNotFoundError (with the fetch
        command) when the converted dataset is not under ``root``.
    """
    if name not in cs.CONVERTED_PAPER_DATASETS:
        raise ValueError(f"name: images are read from the converted layout only for {cs.CONVERTED_PAPER_DATASETS}")
    resize = check_int(resize, "resize", 63)
    ds = data.load_converted(name, root, "all")
    if ds.meta.get("all_captions") is None:
        raise ValueError(f"{Path(root) / name}: no captions.csv; re-run `python -m data_scripts convert {name}`")
    labels = cs.pair_labels(name, ds)
    docs = [" ".join(c) for c in ds.meta["all_captions"]]
    tr, te = cs._paper_split(name, labels, ds.meta["splits"], protocol)
    ttr, tte = cs._converted_text_features(
        name, docs, tr, te, text_features, n_topics, seed, max_vocab, lda_iter, "cpu"
    )
    p = list(ds.meta["paths"])
    return ImagePairs(
        _load_images([p[i] for i in tr], resize),
        np.asarray(ttr, np.float32),
        labels[tr],
        _load_images([p[i] for i in te], resize),
        np.asarray(tte, np.float32),
        labels[te],
        list(ds.class_names),
        meta={"dataset": name, "resize": resize, "test_docs": [docs[i] for i in te], "text_features": text_features},
    )


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def augment(images: torch.Tensor, crop: int, g: torch.Generator) -> torch.Tensor:
    """Training batch: a random ``crop`` × ``crop`` window per image and a horizontal flip with probability 0.5
    (§3.2), vectorised with one gather. (B, 3, S, S) uint8 → (B, 3, crop, crop) normalised float."""
    b, _, s, _ = images.shape
    if crop > s:
        raise ValueError(f"crop: expected at most the image side {s}, got {crop}")
    off = torch.randint(0, s - crop + 1, (b, 2), generator=g).to(images.device)
    flip = (torch.rand(b, generator=g) < 0.5).to(images.device)
    ar = torch.arange(crop, device=images.device)
    rows = off[:, :1] + ar  # (B, crop)
    cols = off[:, 1:] + torch.where(flip[:, None], crop - 1 - ar, ar)
    out = images[
        torch.arange(b, device=images.device)[:, None, None, None],
        torch.arange(3, device=images.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
    return _normalise(out)


def centre_crop(images: torch.Tensor, crop: int) -> torch.Tensor:
    """(B, 3, S, S) uint8 → the normalised centre ``crop`` × ``crop`` (test time)."""
    s = images.shape[-1]
    o = (s - crop) // 2
    return _normalise(images[:, :, o : o + crop, o : o + crop])


class AlexNetIsomorphicNet(cs.IsomorphicNet):
    """:class:`common_space.IsomorphicNet` whose image body is AlexNet's conv1–fc7 (fc6, fc7 with their dropout
    and ReLU), pre-trained or not; T_Net, the latent layers and the (shared) last layer as in the parent, drawn from
    N(0, ``init_std``²). Images are (N, 3, H, W) normalised tensors, H = W ≥ 63."""

    def __init__(
        self,
        text_dim: int,
        n_classes: int,
        latent: int = 512,
        mode: str = "O-LE-J",
        pretrained: bool = True,
        weights: str | Path | None = None,
        init_std: float | None = 0.01,
        seed: int = 0,
    ):
        super().__init__(1, text_dim, n_classes, 4096, latent, mode, "head", 0.5, 0.0, init_std, seed)
        net = alexnet(pretrained, weights)
        self.image_body = nn.Sequential(net.features, net.avgpool, nn.Flatten(), *list(net.classifier)[:6])

    def image_latent(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x_image: expected (N, 3, H, W) images, got {getattr(x, 'shape', type(x).__name__)}")
        return self.image_latent_layer(self.image_body(x))

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """AlexNet's conv1–fc7 (learning rate ×0.1)."""
        return list(self.image_body.parameters())


@dataclass
class FinetuneConfig:
    """§3.2's schedule: ``iterations`` mini-batches of ``batch_size`` pairs, SGD (momentum ``momentum``, weight decay
    ``weight_decay``: Caffe's usual values, the paper gives none), ``lr_new`` / ``lr_pretrained``, both ÷10 at half."""

    mode: str = "O-LE-J"
    latent: int = 512
    iterations: int = 400
    batch_size: int = 256
    lr_new: float = 0.01
    lr_pretrained: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    crop: int = 227
    init_std: float | None = 0.01


class _FinetuneTask(loop.Task):
    def __init__(self, model: AlexNetIsomorphicNet, c: FinetuneConfig, pairs: ImagePairs, seed: int, device):
        self.model, self.c, self.device = model, c, device
        pre = {id(p) for p in model.pretrained_parameters()}
        new = [p for p in model.parameters() if id(p) not in pre]
        self.opt = torch.optim.SGD(
            [{"params": model.pretrained_parameters(), "lr": c.lr_pretrained}, {"params": new, "lr": c.lr_new}],
            lr=c.lr_new,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
        )
        self.drop_at = max(1, int(round(0.5 * c.iterations)))
        self.images = pairs.train_images.to(device)
        self.text = torch.from_numpy(pairs.train_text).to(device)
        self.Y = cs.label_targets(pairs.train_labels, pairs.n_classes).to(device)
        self.g = torch.Generator().manual_seed(seed)
        self.n, self.bs = len(pairs.train_labels), min(c.batch_size, len(pairs.train_labels))
        self.hist: dict[str, list[float]] = {"loss": []}
        model.train()

    def batches(self, trainer, epoch):
        order, pos = torch.randperm(self.n, generator=self.g), 0
        while True:
            if pos + self.bs > self.n:
                order, pos = torch.randperm(self.n, generator=self.g), 0
            yield order[pos : pos + self.bs]
            pos += self.bs

    def on_step_start(self, trainer, idx):
        if trainer.global_step == self.drop_at:
            for pg in self.opt.param_groups:
                pg["lr"] = pg["lr"] / 10

    def training_step(self, trainer, idx):
        x = augment(self.images[idx.to(self.images.device)], self.c.crop, self.g)
        out = self.model(x, self.text[idx.to(self.text.device)])
        y = self.Y[idx.to(self.Y.device)]
        return cs.semantic_matching_loss(out["logits_image"].softmax(1), out["logits_text"].softmax(1), y)

    def optimizers(self, trainer, idx):
        return [self.opt]

    def on_step_end(self, trainer, idx, loss):
        self.hist["loss"].append(float(loss.detach()))


@torch.no_grad()
def _semantic(model: AlexNetIsomorphicNet, pairs: ImagePairs, crop: int, batch: int = 256):
    model.eval()
    dev = next(model.parameters()).device
    zi = torch.cat(
        [
            model.image_head(model.image_latent(centre_crop(pairs.test_images[s : s + batch].to(dev), crop))).softmax(1)
            for s in range(0, len(pairs.test_labels), batch)
        ]
    )
    zt = model.text_head(model.text_latent(torch.from_numpy(pairs.test_text).to(dev))).softmax(1)
    return zi.float().cpu().numpy(), zt.float().cpu().numpy()


def finetune_isomorphic(
    pairs: ImagePairs,
    config: FinetuneConfig,
    *,
    seed: int = 0,
    device: str = "auto",
    pretrained: bool = True,
    weights: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune AlexNet + T_Net with Eq. (2) (or Eq. (1) for the O / O/LE modes) and evaluate on the test pairs
    (Euclidean distance between semantic vectors, Eq. 3): ``{"i2t", "t2i", "average", "consistency", "image_acc",
    "text_acc", "seconds", "history", "test_repr"}``."""
    t0 = time.time()
    if config.crop > pairs.train_images.shape[-1]:
        raise ValueError(f"crop: {config.crop} is larger than the images ({pairs.train_images.shape[-1]} px)")
    dev = torch.device(resolve_device(device))
    torch.manual_seed(seed)
    model = AlexNetIsomorphicNet(
        pairs.train_text.shape[1],
        pairs.n_classes,
        config.latent,
        config.mode,
        pretrained,
        weights,
        config.init_std,
        seed,
    ).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    task = _FinetuneTask(model, config, pairs, seed, dev)
    loop.Trainer(max_steps=config.iterations, device=dev, progress=progress, desc=f"AlexNet {config.mode}").fit(task)
    zi, zt = _semantic(model, pairs, config.crop)
    out: dict[str, Any] = cs.cross_modal_map(zi, zt, pairs.test_labels)
    out["consistency"] = cs.pair_consistency(zi, zt)
    if np.ndim(pairs.test_labels) == 1:
        out["image_acc"] = float((zi.argmax(1) == pairs.test_labels).mean())
        out["text_acc"] = float((zt.argmax(1) == pairs.test_labels).mean())
    else:
        out["image_acc"] = out["text_acc"] = float("nan")
    loss = task.hist["loss"]
    out.update(seconds=time.time() - t0, history=task.hist, test_repr=(zi, zt), finite=bool(np.isfinite(loss).all()))
    del model, task
    return out


@torch.no_grad()
def alexnet_fc7_split(
    pairs: ImagePairs,
    *,
    crop: int = 227,
    pretrained: bool = True,
    weights: str | Path | None = None,
    device: str = "auto",
    batch: int = 256,
) -> cs.CrossModalSplit:
    """The paper's image features for Table 3's baselines: fc7 (after ReLU) of the pre-trained AlexNet on the centre
    ``crop`` of every image, (n, 4096), beside the same text features and split. ``meta["image_features"]`` names
    them (``"AlexNet fc7 …"`` only with the ImageNet weights)."""
    dev = torch.device(resolve_device(device))
    net = alexnet(pretrained, weights).eval().to(dev)
    body = nn.Sequential(net.features, net.avgpool, nn.Flatten(), *list(net.classifier)[:6])

    def feats(images: torch.Tensor) -> np.ndarray:
        parts = [
            body(centre_crop(images[s : s + batch].to(dev), crop)).float().cpu() for s in range(0, len(images), batch)
        ]
        return torch.cat(parts).numpy() if parts else np.zeros((0, 4096), np.float32)

    name = FC7_NAME if pretrained else "AlexNet fc7 (random weights)"
    return cs.CrossModalSplit(
        feats(pairs.train_images),
        pairs.train_text,
        pairs.train_labels,
        feats(pairs.test_images),
        pairs.test_text,
        pairs.test_labels,
        list(pairs.class_names),
        meta={**pairs.meta, "image_features": name},
    )
