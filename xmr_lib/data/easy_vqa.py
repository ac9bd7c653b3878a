"""easy-vqa: the shipped 64×64 shape pictures, decoded from their pixels (one colour list, one shape list)."""

from __future__ import annotations

import numpy as np

#: easy-vqa's eight shape colours and their exact RGB fill, in the order of the colour indices used everywhere
#: (``easy_vqa_shapes``, ``data.load("easy_vqa")`` class names, the shape-caption benchmark): the ONE colour list.
COLOUR_RGB = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "yellow": (255, 255, 0),
    "teal": (0, 128, 128),
    "brown": (165, 42, 42),
}
COLOURS = tuple(COLOUR_RGB)


SHAPES = ("circle", "rectangle", "triangle")


_RGB = np.array(list(COLOUR_RGB.values()), dtype=np.float64)  # (8, 3), row i = COLOURS[i]


def _shape_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the shape: those differing from the (uniform) background colour at the top-left corner."""
    return np.abs(img.astype(np.int64) - img[0, 0].astype(np.int64)).sum(-1) > 40


def easy_vqa_shapes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 5,000 easy-vqa images (train then test, by id): (5000, 64, 64, 3) uint8, colour and shape indices
    (into :data:`COLOURS`, :data:`SHAPES`) read from the pixels.

    The shape colour is one of eight exact RGB values and the shape's fill ratio of its bounding box separates
    triangles (~0.57), circles (~0.79) and rectangles (~1.0); this agrees with easy-vqa's questions wherever
    they name the colour or the shape.
    """
    try:
        import easy_vqa
    except ImportError as e:  # pragma: no cover - easy-vqa is a dependency of the notebooks
        raise ValueError("the offline topic collection needs the `easy-vqa` package (pip install easy-vqa)") from e
    from PIL import Image

    paths = []
    for get in (easy_vqa.get_train_image_paths, easy_vqa.get_test_image_paths):
        p = get()
        paths += [p[i] for i in sorted(p)]
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    colour = np.empty(len(images), dtype=np.int64)
    shape = np.empty(len(images), dtype=np.int64)
    for i, img in enumerate(images):
        m = _shape_mask(img)
        px = np.median(img[m], 0) if m.any() else img[0, 0]
        colour[i] = int(np.abs(_RGB - px).sum(1).argmin())
        ys, xs = np.nonzero(m) if m.any() else (np.array([0]), np.array([0]))
        fill = m.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
        shape[i] = 2 if fill < 0.68 else (0 if fill < 0.92 else 1)
    return images, colour, shape
