"""The thesis's own experiment (the ``full`` profile of notebook 04): the chapter's losses and Algorithm 1 trained
end to end, an ImageNet CNN (MobileNet / ResNet-152 in the thesis) fine-tuned with a small learning rate and a
Bi-LSTM over word vectors for the captions (§4.4, §4.5.1), instead of linear heads on frozen features.

- :func:`load_raw_benchmark`: a Karpathy caption set (Flickr30K, MS-COCO, Flickr8K) as pixels and token ids
  (:class:`~xmr_lib.chapters.ch04.adversarial.CaptionSplit` with ``(n, 3, S, S)`` uint8 images and ``(m, L)``
  int64 captions, the vocabulary from the training captions);
- :class:`ImageBranch` / :class:`TextBranch`: trunk + global average pool + projection head, Bi-LSTM + projection
  head; they take raw inputs, so :func:`~xmr_lib.chapters.ch04.adversarial.embed`, the discriminator views and
  the stability study work unchanged;
- :data:`ENGINE` (:class:`EndToEnd`): what :func:`~xmr_lib.chapters.ch04.adversarial.run_configs` trains with
  (``engine=``): Algorithm 1 with two learning rates (``lr_1`` for the trunk, ``lr_2`` for the rest) decayed by
  ``lr_decay`` every ``decay_every`` epochs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.chapters.ch04 import adversarial as adv
from xmr_lib.core import paths
from xmr_lib.core.setup import resolve_device
from xmr_lib.encoders import backbones
from xmr_lib.encoders import text as _text
from xmr_lib.train import loop

__all__ = ["TRUNKS", "trunk", "ImageBranch", "TextBranch", "RawBenchmark", "load_raw_benchmark", "EndToEnd", "ENGINE"]

#: image trunks of the full profile: name → pooled feature size (MobileNet v1 is not in torchvision: v2 stands in)
TRUNKS = {"mobilenet_v2": 1280, "resnet152": 2048, "resnet101": 2048, "resnet50": 2048, "resnet18": 512}


def trunk(name: str, pretrained: bool = True) -> tuple[nn.Module, int, tuple, tuple]:
    """``(feature-map module, channels, mean, std)`` of a torchvision trunk (ImageNet statistics).

    Through :func:`xmr_lib.encoders.backbones.backbone` when it knows the name, else built here with the weights
    :func:`xmr_lib.core.paths.find_weights` finds (never downloaded; ``pretrained=False``: random weights)."""
    if name not in TRUNKS:
        raise ValueError(f"image_backbone: expected one of {list(TRUNKS)}, got {name!r}")
    if name in backbones.BACKBONES:
        t = backbones.backbone(name, pretrained=pretrained, device="cpu")
        return t.features, t.out_channels, t.mean, t.std
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)  # weights=None: torchvision never downloads
    if pretrained:
        net.load_state_dict(backbones.load_weights_file(paths.find_weights(name)), strict=True)
    if name.startswith("resnet"):
        feats = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    else:
        feats = net.features
    return feats, TRUNKS[name], backbones.IMAGENET_MEAN, backbones.IMAGENET_STD


class ImageBranch(nn.Module):
    """E1 of Fig. 4.1 end to end: (B, 3, S, S) uint8 pixels → normalise → trunk → global average pool → the
    projection head. ``noise_sigma`` > 0 adds N(μ, σ²) to the normalised pixels (μ: their mean; Table 4.7)."""

    raw_input = True

    def __init__(self, features: nn.Module, channels: int, head: adv.ProjectionNet, mean, std):
        super().__init__()
        self.features, self.head = features, head
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.in_dim, self.out_dim, self.noise_sigma = channels, head.out_dim, 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"images: expected (B, 3, S, S) uint8 pixels, got {tuple(x.shape)} {x.dtype}")
        x = (x.float() / 255.0 - self.mean) / self.std
        if self.noise_sigma:
            x = x + x.mean() + self.noise_sigma * torch.randn_like(x)
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x).float().mean(dim=(2, 3)))


class TextBranch(nn.Module):
    """E2 of Fig. 4.1 end to end: (B, L) token ids → Bi-LSTM (max over words) → the projection head.
    ``noise_sigma`` > 0 adds N(μ, σ²) to the word vectors (Table 4.7)."""

    raw_input = True

    def __init__(self, encoder: _text.BiLSTMTextEncoder, head: adv.ProjectionNet):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.in_dim, self.out_dim, self.noise_sigma = encoder.out_dim, head.out_dim, 0.0
        encoder.embedding.register_forward_hook(self._noise)

    def _noise(self, module, inputs, out):
        return out + out.mean() + self.noise_sigma * torch.randn_like(out) if self.noise_sigma else out

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(tokens))


def build_model(cfg: adv.CommonSpaceConfig, n_classes: int, vocab_size: int, seed: int) -> adv.CommonSpaceModel:
    """The chapter's model with an end-to-end image and text branch (``cfg.image_backbone``, ``cfg.word_dim``,
    ``cfg.text_hidden``; ``cfg.pretrained=False``: a randomly initialised trunk)."""
    torch.manual_seed(seed)
    feats, channels, mean, std = trunk(cfg.image_backbone, cfg.pretrained)
    enc = _text.BiLSTMTextEncoder(vocab_size, cfg.word_dim, cfg.text_hidden, cfg.text_dropout)
    model = adv.CommonSpaceModel(channels, enc.out_dim, n_classes, cfg.dim, cfg.hidden, cfg.dropout, cfg.d_hidden, seed)
    model.image = ImageBranch(feats, channels, model.image, mean, std)
    model.text = TextBranch(enc, model.text)
    return model


@dataclass
class RawBenchmark:
    """A caption set as pixels and token ids: the split, the vocabulary, and the test captions / images to show."""

    split: adv.CaptionSplit
    vocab: list[str]
    test_captions: list[str]
    test_images: np.ndarray  # (n ≤ 200, 96, 96, 3) uint8


def _pixels(paths_: Sequence[str], size: int) -> np.ndarray:
    """(n, 3, size, size) uint8: resize the shorter side to ``size`` and crop the centre (torchvision's test
    transform)."""
    out = np.empty((len(paths_), 3, size, size), np.uint8)
    for k, f in enumerate(paths_):
        out[k] = backbones.resize_image(f, size).transpose(2, 0, 1)
    return out


def load_raw_benchmark(
    dataset: str, root: str, n_train: int, n_test: int, image_size: int, max_len: int = 32, min_count: int = 1
) -> RawBenchmark:
    """The Karpathy train and test splits of ``dataset`` under ``root`` (``python -m data_scripts fetch …``) as
    pixels (``image_size``, centre crop) and token ids over the training captions' vocabulary (words seen at least
    ``min_count`` times; captions cut at ``max_len`` words)."""
    parts = {}
    for part, n in (("train", n_train), ("test", n_test)):
        parts[part] = adv.karpathy_caption_benchmark(dataset, root, part, max_images=n)
    vocab = _text.build_vocab(parts["train"][1], min_count=min_count)
    (trp, trc, trpair), (tep, tec, tepair) = parts["train"], parts["test"]
    split = adv.CaptionSplit(
        _pixels(trp, image_size),
        _text.tokenize(trc, vocab, max_len),
        np.asarray(trpair),
        _pixels(tep, image_size),
        _text.tokenize(tec, vocab, max_len),
        np.asarray(tepair),
        np.arange(len(tep)),
        np.arange(len(tec)),
    )
    split.test_image_label = karpathy_identities(dataset, root, "test", n_test)
    shown = np.stack([backbones.resize_image(f, 96) for f in tep[:200]])
    return RawBenchmark(split, vocab, list(tec), shown)


def karpathy_identities(dataset: str, root: str, part: str, max_images: int | None = None) -> np.ndarray | None:
    """The identity (``"id"``, CUHK-PEDES's person) of each image of ``part`` in ``<root>/<dataset>/dataset_<dataset>
    .json``, in the order :func:`~xmr_lib.chapters.ch04.adversarial.karpathy_caption_benchmark` reads them: (n,)
    int64, or None when the images carry no ``"id"`` (Flickr8K / 30K, COCO: instance relevance)."""
    want = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}[part]
    meta = Path(root) / dataset / f"dataset_{dataset}.json"
    imgs = [im for im in json.loads(meta.read_text())["images"] if im.get("split") in want]
    imgs = imgs[:max_images] if max_images else imgs
    if not imgs or any("id" not in im for im in imgs):
        return None
    return np.asarray([int(im["id"]) for im in imgs], dtype=np.int64)


class _Task(adv.CommonSpaceTask):
    """Algorithm 1 end to end: the trunk at ``lr_backbone`` (lr_1), the Bi-LSTM, heads and classifier at ``lr``
    (lr_2), both multiplied by ``lr_decay`` every ``decay_every`` epochs; batches of pixels and token ids are moved
    to the device one at a time (the images stay in host memory)."""

    def __init__(self, model, config, xi_all, xt_all, pi, seed, device):
        super().__init__(model, config, xi_all, xt_all, pi, seed)
        c, trunk_params = config, list(model.image.features.parameters())
        ids = {id(p) for p in trunk_params}
        rest = [p for p in model.encoder_parameters() if id(p) not in ids]
        self.opt = torch.optim.Adam(
            [{"params": trunk_params, "lr": c.lr_backbone}, {"params": rest, "lr": c.lr}], weight_decay=c.weight_decay
        )
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=c.decay_every, gamma=c.lr_decay)
        self.dev = device

    def training_step(self, trainer: loop.Trainer, idx: torch.Tensor) -> dict:
        idx = idx.cpu()
        y = self.pi[idx]
        xi = self.xi_all[y].to(self.dev)
        xt = self.xt_all[idx].to(self.dev)
        for p in self.model.adversary_parameters():
            p.requires_grad_(False)
        total, terms = adv._generator_terms(self.model, self.c, xi, xt, y.to(self.dev), self.c.grl_coeff)
        return {"loss": total, "terms": terms, "xi": xi, "xt": xt}

    def on_epoch_end(self, trainer: loop.Trainer, epoch: int) -> None:
        super().on_epoch_end(trainer, epoch)
        self.hist.epochs[-1]["lr_backbone"] = self.opt.param_groups[0]["lr"]
        self.sched.step()


class EndToEnd:
    """The engine :func:`~xmr_lib.chapters.ch04.adversarial.run_configs` uses for raw inputs (``engine=ENGINE``):
    ``build`` a model, ``train`` one (configuration, seed)."""

    def build(self, split: adv.CaptionSplit, cfg: adv.CommonSpaceConfig, seed: int) -> adv.CommonSpaceModel:
        return build_model(cfg, len(split.train_image), cfg.vocab_size, seed)

    def train(
        self, split: adv.CaptionSplit, cfg: adv.CommonSpaceConfig, seed: int, device: str = "auto"
    ) -> tuple[adv.CommonSpaceModel, adv.TrainHistory]:
        dev = torch.device(resolve_device(device))
        model = build_model(cfg, len(split.train_image), cfg.vocab_size, seed).to(dev)
        if dev.type == "cuda":
            model.image.features.to(memory_format=torch.channels_last)
        xi = torch.as_tensor(np.asarray(split.train_image))
        xt = torch.as_tensor(np.asarray(split.train_text, dtype=np.int64))
        pi = torch.as_tensor(np.asarray(split.train_pair), dtype=torch.long)
        task = _Task(model, cfg, xi, xt, pi, seed, dev)
        loop.Trainer(max_epochs=cfg.epochs, device=dev, amp=dev.type == "cuda", progress=False).fit(task)
        model.eval()
        return model, task.hist


ENGINE = EndToEnd()


def describe(bench: Any) -> str:
    """One line: images, captions, pixel size and vocabulary of both splits."""
    s = bench.split
    return (
        f"train: {len(s.train_image)} images, {len(s.train_text)} captions | test: {len(s.test_image)} images, "
        f"{len(s.test_text)} captions | pixels {s.train_image.shape[-1]}², {len(bench.vocab)} words, "
        f"captions ≤ {s.train_text.shape[1]} tokens"
    )
