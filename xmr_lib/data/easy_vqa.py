"""easy-vqa: the shipped 64×64 shape pictures and their colour and shape (one colour list, one shape list), as
easy-vqa's own questions give them, read from the pixels where the questions do not."""

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

#: shape from the fill ratio of its extent (see :func:`_decode_pixels`): triangle below the first bound, circle
#: below the second, rectangle above; ideal values 0.5, π/4 ≈ 0.785 and 1, measured on the 5,000 pictures
#: 0.525-0.685 (the smallest triangles, ~8 px a side, highest), 0.786-0.868 and 0.999-1.000
_FILL_BOUNDS = (0.735, 0.93)


def _background(img: np.ndarray) -> np.ndarray:
    """The picture's background colour: the most frequent colour on its border (all four edges).

    easy-vqa fills the canvas with one colour and draws a shape of at most half the side inside it, so the shape
    covers at most about a quarter of the border; the top-left pixel alone is the shape's colour (or a blend with
    it) when the shape touches that corner (train ids 422 and 577)."""
    border = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]]).astype(np.int64)
    packed = (border[:, 0] << 16) | (border[:, 1] << 8) | border[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    v = int(values[counts.argmax()])
    return np.array([v >> 16, (v >> 8) & 255, v & 255], dtype=img.dtype)


def _shape_mask(img: np.ndarray) -> np.ndarray:
    """Pixels of the shape: those differing from the background colour (:func:`_background`) by more than 40
    (summed over R, G, B), i.e. the shape and most of its anti-aliased edge."""
    return np.abs(img.astype(np.int64) - _background(img).astype(np.int64)).sum(-1) > 40


def _decode_pixels(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour and shape indices (into :data:`COLOURS`, :data:`SHAPES`) of easy-vqa pictures, read from the pixels.

    easy-vqa draws one shape of one of the eight exact colours on a uniform light background (each channel in
    230-255) at twice the size and halves the picture with a bilinear filter, so every pixel is a blend
    ``α·fill + (1 − α)·background`` with ``α`` the share of the pixel the shape covers.

    - Colour: the palette colour that most pixels show exactly. Every shape, even the smallest (8 px a side), has
      interior pixels of the pure fill colour (12 or more in each of the 5,000 pictures, and none of another
      palette colour), whereas a small shape's blended edge pixels outnumber them, so the median of the shape's
      pixels is a blend (test id 100, a black triangle of ~60 pixels, has a brownish median). Fallback when no
      pixel is pure: the colour nearest the pixel farthest from the background.
    - Shape: with background ``B`` and fill ``F`` known, each pixel's coverage ``α`` is its projection onto the
      segment ``B → F`` (clipped to [0, 1]). The area is ``Σ α``, the width the largest row sum of ``α`` and the
      height the largest column sum: unlike the bounding box of thresholded pixels, these do not grow or shrink
      by a whole pixel at the blurred edges, so the fill ratio ``area / (width · height)`` stays near its ideal
      value, 0.5 for easy-vqa's upright equilateral triangle, π/4 for a circle and 1 for a rectangle, even for
      shapes of 8 px. Bounds: :data:`_FILL_BOUNDS`.
    """
    images = np.asarray(images)
    colour = np.empty(len(images), dtype=np.int64)
    shape = np.empty(len(images), dtype=np.int64)
    code = (_RGB.astype(np.int32) * [65536, 256, 1]).sum(1)  # palette colours packed into one int each
    for start in range(0, len(images), 500):  # a few hundred pictures at a time: fast, small float arrays
        img = images[start : start + 500]
        bg = np.stack([_background(im) for im in img]).astype(np.float32)  # (m, 3)
        packed = (img[..., 0].astype(np.int32) << 16) | (img[..., 1].astype(np.int32) << 8) | img[..., 2]
        pure = np.stack([(packed == k).sum((1, 2)) for k in code], 1)  # (m, 8): pixels of exactly each colour
        c = pure.argmax(1)
        for j in np.flatnonzero(pure.max(1) == 0):  # pragma: no cover - every shipped picture has pure pixels
            px = img[j].reshape(-1, 3).astype(np.float64)
            c[j] = np.abs(_RGB - px[np.abs(px - bg[j]).sum(1).argmax()]).sum(1).argmin()
        v = _RGB[c].astype(np.float32) - bg  # (m, 3): background → fill
        v /= np.maximum((v * v).sum(1, keepdims=True), 1)
        alpha = np.einsum("mhwc,mc->mhw", img.astype(np.float32), v) - (bg * v).sum(1)[:, None, None]
        alpha = np.clip(alpha, 0, 1)
        extent = alpha.sum(2).max(1) * alpha.sum(1).max(1)
        fill = np.where(extent > 0, alpha.sum((1, 2)) / np.maximum(extent, 1e-9), 1.0)
        colour[start : start + len(img)] = c
        shape[start : start + len(img)] = np.where(
            fill < _FILL_BOUNDS[0],
            SHAPES.index("triangle"),
            np.where(fill < _FILL_BOUNDS[1], SHAPES.index("circle"), SHAPES.index("rectangle")),
        )
    return colour, shape


def _question_labels(questions, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Colour and shape indices that easy-vqa's own questions fix for images ``0 … n_images − 1`` (−1 where they
    do not, or where they contradict each other).

    ``questions`` is ``(texts, answers, image_ids)`` as ``easy_vqa.get_train_questions()`` returns it. easy-vqa
    writes, per image, a random subset of: what shape / what colour (the answer is the attribute), "what is the
    <colour> shape?" and "what colour is the <shape>?" (the question names the other attribute too), and yes/no
    questions "is there (not) a <colour> shape / <shape>?" in eight phrasings (``yes`` to a plain or ``no`` to a
    negated one says the shape has it, otherwise that it has not; all colours but one ruled out fixes the colour).
    """
    vocab = {**{c: ("colour", k) for k, c in enumerate(COLOURS)}, **{s: ("shape", k) for k, s in enumerate(SHAPES)}}
    size = {"colour": len(COLOURS), "shape": len(SHAPES)}
    has = {a: [set() for _ in range(n_images)] for a in size}
    has_not = {a: [set() for _ in range(n_images)] for a in size}
    for text, answer, i in zip(*questions):
        words = text.rstrip("?").split()
        named = [vocab[w] for w in words if w in vocab]
        if answer in vocab:
            attr, k = vocab[answer]
            has[attr][i].add(k)
            for attr, k in named:
                has[attr][i].add(k)
        elif answer in ("yes", "no") and len(named) == 1:
            attr, k = named[0]
            negated = "not" in words or "no" in words
            ((has if (answer == "yes") != negated else has_not)[attr][i]).add(k)
    out = {}
    for attr, n in size.items():
        label = np.full(n_images, -1, dtype=np.int64)
        for i in range(n_images):
            yes, no = has[attr][i], has_not[attr][i]
            left = (yes or set(range(n))) - no
            if len(left) == 1 and len(yes) <= 1:
                label[i] = left.pop()
        out[attr] = label
    return out["colour"], out["shape"]


def easy_vqa_shapes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 5,000 easy-vqa images (train then test, by id): (5000, 64, 64, 3) uint8, colour and shape indices
    (into :data:`COLOURS`, :data:`SHAPES`).

    The labels are easy-vqa's own: where the package's questions fix an image's colour (4,634 images) or shape
    (4,791), that answer is the label (:func:`_question_labels`; the question files ship with the ``easy-vqa``
    package, so this needs no network); the remaining images' labels are read from the pixels
    (:func:`_decode_pixels`). The pixel decoder agrees with every question of all 5,000 images, yes/no questions
    included (``tests/data/test_easy_vqa_colours.py``), so the questions are a safeguard, not a correction, and
    the labels do not depend on which of the two named them. An earlier decoder took the top-left pixel for the
    background and the median shape pixel for the colour and misread 9 colours and 15 shapes of 18 images
    (small shapes, one shape covering the corner).
    """
    try:
        import easy_vqa
    except ImportError as e:  # pragma: no cover - easy-vqa is a dependency of the notebooks
        raise ValueError("the offline topic collection needs the `easy-vqa` package (pip install easy-vqa)") from e
    from PIL import Image

    paths, offsets, questions = [], [], []
    for get_paths, get_questions in (
        (easy_vqa.get_train_image_paths, easy_vqa.get_train_questions),
        (easy_vqa.get_test_image_paths, easy_vqa.get_test_questions),
    ):
        p = get_paths()
        offsets.append(len(paths))
        paths += [p[i] for i in sorted(p)]
        questions.append(get_questions)
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    colour, shape = _decode_pixels(images)
    for offset, get_questions in zip(offsets, questions):
        try:
            texts, answers, ids = get_questions()
        except OSError:  # pragma: no cover - the question files ship with the package
            continue
        ids = [offset + int(i) for i in ids]
        c, s = _question_labels((texts, answers, ids), len(images))
        colour = np.where(c >= 0, c, colour)
        shape = np.where(s >= 0, s, shape)
    return images, colour, shape
