"""Image and text features of a pool: the one entry point every chapter extracts with."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from xmr_lib.core.cache import cached
from xmr_lib.encoders import backbones as models
from xmr_lib.encoders import text as _text

# Pool files: the centre square, bicubic to ``size`` (how these pools were always read; see resize_image).
_FILE_FIT = {"fit": "square", "interpolation": "bicubic", "rounding": "floor"}


def image_features(
    images=None,
    *,
    paths: Sequence[str] | None = None,
    size: int = 128,
    device: str = "cpu",
    batch_size: int = 100,
    center: bool = True,
    cache_key: dict | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Global-average-pooled EfficientNet-Lite0 features (ImageNet weights, no fine-tuning) of a pool of images.

    The paper used the last fully connected layer before the classifier of ImageNet CNNs, L2-normalised, dot
    product as similarity. Ours: the 1280-d pooled trunk output (Lite0 has no hidden fc) of
    :func:`xmr_lib.encoders.backbones.backbone` at ``size`` px (:func:`xmr_lib.encoders.backbones.preprocess`), centred by the pool mean
    (when ``center``) and L2-normalised, so dot products are cosines around the pool's average picture.

    Args:
        images: (M, H, W, 3) uint8 (shorter side to ``size``, centre crop), or ``paths``: M image files (their
            centre square, bicubic to ``size``: :func:`xmr_lib.encoders.backbones.resize_image` with
            ``fit="square"``).
        cache_key: when given, the result is cached on disk (:func:`xmr_lib.core.cache.cached`, under
            ``$XMR_CACHE_DIR``, default ``~/.cache/xmr``).
    Returns:
        (M, 1280) float32.
    """
    from tqdm.auto import tqdm

    if (images is None) == (paths is None):
        raise ValueError("give exactly one of images= (M, H, W, 3) uint8 or paths= (M image files)")
    if images is not None:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected (M, H, W, 3) uint8, got shape {images.shape}")
    M = len(images) if images is not None else len(paths)

    def compute():

        trunk = models.backbone("efficientnet_lite0", device=device)
        pool = lambda maps: maps.mean(dim=(2, 3))  # noqa: E731 - global average pooling on the device
        prep = lambda ims: models.preprocess(ims, size=size)  # noqa: E731 - resize + centre crop, Lite0 stats
        if images is not None:
            return models.extract_feature_maps(
                trunk, images, batch_size=batch_size, device=device, reduce=pool, transform=prep, progress=progress
            ).numpy()
        out = []  # image files: decode a chunk at a time
        chunk = max(batch_size, 1024)
        for s in tqdm(range(0, M, chunk), desc="EfficientNet-Lite0 features", disable=not progress, leave=False):
            ims = np.stack([models.resize_image(p, size, **_FILE_FIT) for p in paths[s : s + chunk]])
            out.append(
                models.extract_feature_maps(
                    trunk, ims, batch_size=batch_size, device=device, reduce=pool, transform=prep, progress=False
                ).numpy()
            )
        return np.concatenate(out)

    raw = (
        cached(
            {
                "what": "effnet_lite0_gap",
                "size": size,
                "n": M,
                "prep": "models.preprocess",
                "content": _content_digest(images, paths),
                **cache_key,
            },
            compute,
        )
        if cache_key is not None
        else compute()
    )
    f = raw - raw.mean(0, keepdims=True) if center else raw
    return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def text_features(
    texts: Sequence[str],
    *,
    encoder: str = "minilm",
    fit_texts: Sequence[str] | None = None,
    dim: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """L2-normalised text embeddings: ``"minilm"`` (all-MiniLM-L6-v2 sentence embeddings, 384-d) or ``"tfidf"``
    (tf-idf fitted on ``fit_texts`` — default ``texts`` — reduced to ``dim`` dimensions by truncated SVD when the
    vocabulary is larger). Returns (len(texts), E) float32."""
    texts = [str(t) for t in texts]
    if encoder == "minilm":
        e = np.asarray(_text.encode(texts, progress=False), dtype=np.float32)
    elif encoder == "tfidf":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        fit = list(fit_texts) if fit_texts is not None else texts
        vec = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b").fit(fit)
        x = vec.transform(texts)
        if x.shape[1] > dim:
            svd = TruncatedSVD(dim, random_state=seed).fit(vec.transform(fit))
            e = svd.transform(x).astype(np.float32)
        else:
            e = x.toarray().astype(np.float32)
    else:
        raise ValueError(f"encoder: expected 'minilm' or 'tfidf', got {encoder!r}")
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def _content_digest(images, paths) -> str:
    """sha1 of the pool itself (every image's bytes, or the file paths), part of the cache key: a caller's key that
    names the pool but not its content (e.g. a generated pool whose draw changed) can never return stale features."""
    h = hashlib.sha1()
    if images is not None:
        a = np.ascontiguousarray(images)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    else:
        h.update("\n".join(map(str, paths)).encode())
    return h.hexdigest()[:16]
