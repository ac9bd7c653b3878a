"""Feature maps of image collections for instance retrieval: extracted once, cached on disk, pooled many times.

The pipeline of :class:`MapExtractor` (notebook 02 and any chapter that pools the maps of a split trunk)::

    images, each uint8 (H_i, W_i, 3), any sizes
      → to_input:      (3, h_i, w_i) float tensors, normalised, longer side = size (aspect ratio kept)
      → run_batched:   lower(x) for batches of same-shape inputs → (N, C, h', w') maps (a list if shapes differ)
      → cached on disk (xmr_lib.core.cache.cached) under {model, lower_blocks, dataset, part, size, images}
      → pool_all:      {name: (N, D)} descriptors of upper(maps), streamed in chunks (the final maps are not kept)

Unlike :func:`xmr_lib.encoders.backbones.extract_feature_maps` (square centre crops, one batch shape), nothing is
cropped: a revisited query is already cropped to its object, and a database image keeps its whole frame. Images of
different shapes cannot share a batch, so a chunk of mixed shapes runs one image at a time; the maps then come back
as a list of (C, h_i, w_i) tensors.

Multi-scale: :meth:`MapExtractor.maps` takes an image ``scale``; the input size is ``round(image_size * scale)``,
each scale cached on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from xmr_lib.core import cache

__all__ = ["to_input", "run_batched", "fingerprint", "pool_all", "MapExtractor"]

#: cached maps: one (N, C, h, w) tensor, or N (C, h_i, w_i) tensors when the images' shapes differ
Maps = Union[torch.Tensor, list[torch.Tensor]]


def to_input(img, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """One image → the trunk's input.

    Args:
        img: (H, W, 3) uint8 array (or anything ``np.asarray`` makes one of; grey / RGBA are converted to RGB).
        size: the longer side after resizing, px. The shorter side is ``round(side * size / longer)`` (at least 1);
            PIL's bilinear filter.
        mean, std: 3 per-channel values applied to pixels scaled to [0, 1].

    Returns:
        (3, h, w) float32 tensor with ``max(h, w) == size``.
    """
    im = Image.fromarray(np.asarray(img)).convert("RGB")
    f = size / max(im.size)
    im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.BILINEAR)
    t = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float().div_(255.0)
    return (t - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


@torch.no_grad()
def run_batched(net: nn.Module, items: Sequence, device: str = "cpu", batch_size: int = 32) -> Maps:
    """``net`` over many inputs, in eval mode, without gradients, ``batch_size`` at a time.

    Args:
        net: maps a (B, 3, h, w) batch to (B, C, h', w') (moved to ``device``; left in eval mode).
        items: N inputs, each a (3, h_i, w_i) tensor or a zero-argument callable making one (so that only one
            chunk of inputs is in memory at a time).
        device: where ``net`` runs; outputs come back to the CPU as float32.
        batch_size: inputs per chunk. A chunk whose inputs share one shape runs as one batch; a chunk of mixed
            shapes runs one input at a time.

    Returns:
        (N, C, h', w') tensor when every output has the same shape, else a list of N (C, h'_i, w'_i) tensors.
    """
    net = net.to(device).eval()
    out = []
    for i in range(0, len(items), batch_size):
        chunk = [items[j] for j in range(i, min(i + batch_size, len(items)))]
        chunk = [c() if callable(c) else c for c in chunk]
        if len({tuple(c.shape) for c in chunk}) == 1:
            out += list(net(torch.stack(chunk).to(device)).float().cpu())
        else:
            out += [net(c[None].to(device))[0].float().cpu() for c in chunk]
    return torch.stack(out) if len({tuple(o.shape) for o in out}) == 1 else out


def fingerprint(images: Sequence) -> str:
    """16 hex digits identifying a collection of images for the cache: its length and the bytes of up to 16 images
    spread evenly over it (first and last included). Cheap for thousands of lazily loaded images; two collections
    of the same length that differ only in images not sampled share a fingerprint, so the cache key also names the
    dataset and the part."""
    h = hashlib.sha1(str(len(images)).encode())
    for i in np.linspace(0, len(images) - 1, min(16, len(images))).astype(int):
        h.update(np.ascontiguousarray(images[i]).tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def pool_all(
    maps: Maps,
    fns: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    net: nn.Module,
    device: str = "cpu",
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Every pooling of ``fns`` on the maps ``net(maps)``, streamed: ``batch_size`` inputs at a time go through
    ``net``, every pooling reads the result, and the maps are dropped.

    Args:
        maps: (N, C, h, w) tensor, or a list of N (C, h_i, w_i) tensors (a chunk of mixed shapes runs one map at a
            time; a list of one shape is stacked).
        fns: ``{name: pooling}``, each mapping (B, K, H, W) maps to (B, D) vectors.
        net: the module between the cached maps and the poolings (the trunk's upper part; ``nn.Identity()`` pools
            the maps themselves). Moved to ``device`` and set to eval mode.

    Returns:
        ``{name: (N, D) float32 array}``, rows in the order of ``maps``.
    """
    net = net.to(device).eval()
    out = {k: [] for k in fns}
    for i in range(0, len(maps), batch_size):
        chunk = maps[i : i + batch_size]
        if isinstance(chunk, list) and len({tuple(c.shape) for c in chunk}) > 1:
            outs = [net(c[None].to(device)) for c in chunk]
        else:
            outs = [net((torch.stack(chunk) if isinstance(chunk, list) else chunk).to(device))]
        for k, fn in fns.items():
            out[k].append(torch.cat([fn(m) for m in outs]).float().cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items()}


@dataclass
class MapExtractor:
    """A trunk split in two, ``trunk(x) = upper(lower(x))``: the maps of the frozen ``lower`` part are extracted once
    per image collection and scale and cached on disk; poolings run ``upper`` on them (fine-tuning trains ``upper``
    on the same cached maps).

    Args:
        lower, upper: the two parts (e.g. ``xmr_lib.train.finetune.split_trunk(trunk, k)``).
        model: the trunk's name, in the cache key.
        lower_blocks: how many blocks ``lower`` holds, in the cache key (a different split gives other maps).
        mean, std: the trunk's input normalisation (3 values each).
        image_size: the longer image side at scale 1, px.
        device: where both parts run.
        batch_size: images per forward pass of ``lower``.
    """

    lower: nn.Module
    upper: nn.Module
    model: str
    lower_blocks: int
    mean: Sequence[float]
    std: Sequence[float]
    image_size: int
    device: str = "cpu"
    batch_size: int = 32

    def size(self, scale: float = 1.0) -> int:
        """The longer input side at ``scale``: ``round(image_size * scale)`` px."""
        return int(round(self.image_size * scale))

    def key(self, images: Sequence, dataset: str, part: str, scale: float = 1.0) -> dict:
        """The cache key of :meth:`maps`: ``{model, lower_blocks, dataset, part, size, images}`` (``images`` is
        :func:`fingerprint`)."""
        return {
            "model": self.model,
            "lower_blocks": self.lower_blocks,
            "dataset": dataset,
            "part": part,
            "size": self.size(scale),
            "images": fingerprint(images),
        }

    def maps(self, images: Sequence, dataset: str, part: str, scale: float = 1.0, root: str | None = None) -> Maps:
        """``lower`` maps of N images at one scale, from the disk cache when they were extracted before.

        Args:
            images: N (H_i, W_i, 3) uint8 images (a list, an array or lazily loaded files); read one chunk at a
                time.
            dataset, part: names for the cache key (e.g. ``"photo_instances_seed0"``, ``"db"``).
            scale: image scale; the longer side is :meth:`size`.
            root: cache folder (default ``$XMR_CACHE_DIR/features``).

        Returns:
            (N, C, h, w) float32 tensor, or a list of N (C, h_i, w_i) tensors when the images' shapes differ.
        """
        size = self.size(scale)

        def compute():
            m = run_batched(
                self.lower,
                [(lambda j=j: to_input(images[j], size, self.mean, self.std)) for j in range(len(images))],
                self.device,
                self.batch_size,
            )
            return m.numpy() if isinstance(m, torch.Tensor) else {str(i): t.numpy() for i, t in enumerate(m)}

        v = cache.cached(self.key(images, dataset, part, scale), compute, root=root)
        return (
            torch.from_numpy(v) if isinstance(v, np.ndarray) else [torch.from_numpy(v[str(i)]) for i in range(len(v))]
        )

    def describe(
        self,
        maps: Maps,
        fns: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
        net: nn.Module | None = None,
        batch_size: int = 64,
    ) -> dict[str, np.ndarray]:
        """:func:`pool_all` of cached maps through ``net`` (default ``upper``): ``{name: (N, D) array}``."""
        return pool_all(maps, fns, self.upper if net is None else net, self.device, batch_size)

    @torch.no_grad()
    def final_maps(self, maps: Maps, n: int = 4) -> list[torch.Tensor]:
        """``upper`` maps of the first ``n`` cached maps, one at a time: n (K, H, W) CPU tensors (for figures)."""
        net = self.upper.to(self.device).eval()
        return [net(m[None].to(self.device))[0].cpu() for m in maps[:n]]
