"""The shape-caption benchmark: easy-vqa pictures with generated captions (colour, shape, size, position)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xmr_lib.data.easy_vqa import COLOURS, SHAPES, _shape_mask, easy_vqa_shapes


@dataclass
class ShapeCaptions:
    """Images, their captions (several per image) and the attributes the captions were written from.

    ``captions[k]`` describes ``images[pair_image[k]]``; the instance label of a caption is its image index.
    """

    images: np.ndarray  # (n, 64, 64, 3) uint8
    captions: list[str]  # n * captions_per_image
    pair_image: np.ndarray  # (n * captions_per_image,) int
    attributes: dict[str, np.ndarray]  # colour, shape, size, column, row: (n,) int
    source: np.ndarray  # (n,) index into easy-vqa's 5,000 images

    def subset(self, image_idx: np.ndarray) -> "ShapeCaptions":
        """The images ``image_idx`` with their captions, re-indexed 0..len-1."""
        image_idx = np.asarray(image_idx)
        remap = -np.ones(len(self.images), dtype=np.int64)
        remap[image_idx] = np.arange(len(image_idx))
        keep = np.nonzero(remap[self.pair_image] >= 0)[0]
        keep = keep[np.argsort(remap[self.pair_image[keep]], kind="stable")]
        return ShapeCaptions(
            self.images[image_idx],
            [self.captions[k] for k in keep],
            remap[self.pair_image[keep]],
            {k: v[image_idx] for k, v in self.attributes.items()},
            self.source[image_idx],
        )


SIZE_WORDS = ("small", "medium-sized", "large")


COLUMN_WORDS = ("on the left", "in the middle", "on the right")


ROW_WORDS = ("at the top", "", "at the bottom")


_SHAPE_WORDS = {
    "circle": ("circle", "round shape", "disc", "circle"),
    "rectangle": ("rectangle", "box", "rectangular shape", "rectangle"),
    "triangle": ("triangle", "triangular shape", "triangle", "three-sided shape"),
}


_TEMPLATES = (
    "a {size} {colour} {shape} {where}",
    "there is a {size} {colour} {shape} {where}",
    "the picture shows a {colour} {shape} {where}, {size}",
    "{where} a {size} {colour} {shape}",
    "a {colour} {shape}, {size}, {where}",
    "an image of a {size} {colour} {shape} {where}",
    "{size} {colour} {shape} drawn {where} on a plain background",
)


def _caption(rng: np.random.Generator, colour: str, shape: str, size: str, where: str, p_drop: float) -> str:
    t = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    words = _SHAPE_WORDS[shape]
    text = t.format(
        size=size if rng.random() > p_drop else "",
        colour=colour if rng.random() > p_drop / 3 else "",
        shape=words[rng.integers(len(words))],
        where=where if rng.random() > p_drop else "",
    )
    return " ".join(text.replace(" ,", ",").replace(",,", ",").split()).strip(" ,")


def shape_caption_benchmark(
    n_images: int = 5000, captions_per_image: int = 5, seed: int = 0, p_drop: float = 0.3
) -> ShapeCaptions:
    """An offline image–caption benchmark with the Flickr30K structure (several captions per image, the
    instance label is the image), built from easy-vqa's 5,000 shape images.

    Each image's colour and shape come from easy-vqa's own questions (else its pixels) (:func:`xmr_lib.data.easy_vqa.easy_vqa_shapes`); its size
    (tertiles of the shape's area) and position (3 × 3 grid of its centre) are measured too. Each caption names
    a random paraphrase of the shape and, each with probability ``1 − p_drop``, the size and the position
    (the colour with ``1 − p_drop/3``), in one of several templates, so captions of one image differ and some are
    ambiguous, as real captions are.

    Args:
        n_images: how many images (the first ``n_images`` of a seeded permutation of the 5,000).
        captions_per_image: 5 as in Flickr30K / MS-COCO; 1 removes the caption imbalance.
        seed: which images and which captions. p_drop: probability of leaving an attribute out of a caption.
    Returns:
        :class:`ShapeCaptions`.
    """

    if not isinstance(n_images, int) or not 2 <= n_images <= 5000:
        raise ValueError(f"n_images: expected an int in [2, 5000], got {n_images!r}")
    if not isinstance(captions_per_image, int) or captions_per_image < 1:
        raise ValueError(f"captions_per_image: expected an int >= 1, got {captions_per_image!r}")
    if not 0 <= p_drop < 1:
        raise ValueError(f"p_drop: expected a probability in [0, 1), got {p_drop!r}")
    images, colour, shape = easy_vqa_shapes()
    rng = np.random.default_rng(seed)
    src = np.sort(rng.permutation(len(images))[:n_images])
    images, colour, shape = images[src], colour[src], shape[src]
    area = np.empty(len(images))
    cy = np.empty(len(images))
    cx = np.empty(len(images))
    for i, img in enumerate(images):
        m = _shape_mask(img)
        ys, xs = np.nonzero(m) if m.any() else (np.array([32]), np.array([32]))
        area[i], cy[i], cx[i] = m.sum(), ys.mean(), xs.mean()
    H = images.shape[1]
    size = np.digitize(area, np.quantile(area, [1 / 3, 2 / 3]))
    column = np.clip((cx / H * 3).astype(int), 0, 2)
    row = np.clip((cy / H * 3).astype(int), 0, 2)
    captions, pair = [], []
    for i in range(len(images)):
        where = (
            " ".join(w for w in (ROW_WORDS[row[i]], COLUMN_WORDS[column[i]]) if w)
            if not (row[i] == 1 and column[i] == 1)
            else "in the centre"
        )
        for _ in range(captions_per_image):
            captions.append(_caption(rng, COLOURS[colour[i]], SHAPES[shape[i]], SIZE_WORDS[size[i]], where, p_drop))
            pair.append(i)
    return ShapeCaptions(
        images,
        captions,
        np.asarray(pair),
        {"colour": colour, "shape": shape, "size": size, "column": column, "row": row},
        src,
    )
