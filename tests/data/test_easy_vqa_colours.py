"""The easy-vqa class names say the colour the pixels show (data.load("easy_vqa") once named yellow shapes "teal",
teal "brown" and brown "yellow": its colour list was in another order than the one the pixels were decoded with)."""

import numpy as np
import pytest

from xmr_lib.data import easy_vqa
from xmr_lib.data import registry as data

pytest.importorskip("easy_vqa")

# CSS / X11 named colours, written out here so that the test does not reuse the library's table
NAMED_RGB = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "yellow": (255, 255, 0),
    "teal": (0, 128, 128),
    "brown": (165, 42, 42),
}


def _inner_mask(img: np.ndarray) -> np.ndarray:
    """Pixels inside the shape: those that differ clearly from the background (the most frequent colour on the
    image border; a shape may touch a corner), eroded by one pixel so that the anti-aliased edge (a blend with the
    background) does not count."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    colours, counts = np.unique(border, axis=0, return_counts=True)
    mask = np.abs(img.astype(np.float64) - colours[counts.argmax()]).sum(-1) > 60
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return inner


def _shape_mean_rgb(img: np.ndarray) -> np.ndarray:
    inner = _inner_mask(img)
    assert inner.sum() > 20, "no shape found in the picture"
    return img[inner].astype(np.float64).mean(0)


def _nearest_name(rgb: np.ndarray) -> str:
    return min(NAMED_RGB, key=lambda c: float(np.abs(np.array(NAMED_RGB[c]) - rgb).sum()))


@pytest.mark.parametrize("split", ["train", "test"])
def test_class_names_say_the_colour_of_the_pixels(split):
    ds = data.load("easy_vqa", split)
    seen = set()
    for label in np.unique(ds.labels):
        # a few images of each (colour, shape) class: the four with the largest shapes (a shape of a few pixels
        # is mostly anti-aliased edge, see test_decoder_agrees_with_easy_vqa_questions)
        idx = np.flatnonzero(ds.labels == label)
        idx = idx[np.argsort([-_inner_mask(ds.images[i]).sum() for i in idx], kind="stable")[:4]]
        colour = ds.class_names[label].split()[0]
        for i in idx:
            got = _nearest_name(_shape_mean_rgb(ds.images[i]))
            assert got == colour, f"image {i} of class {ds.class_names[label]!r} looks {got}"
            assert ds.captions[i].split()[1] == colour
        seen.add(colour)
    assert seen == set(NAMED_RGB)


def test_one_colour_list():
    ds = data.load("easy_vqa", "test", n=48, seed=0)
    assert list(ds.multilabel_names[: len(easy_vqa.COLOURS)]) == list(easy_vqa.COLOURS)
    assert [n.split()[0] for n in ds.class_names[:: len(easy_vqa.SHAPES)]] == list(easy_vqa.COLOURS)
    assert set(easy_vqa.COLOURS) == set(NAMED_RGB)


@pytest.mark.xfail(
    strict=True,
    reason="known: the pixel decoder misreads 7 colours and 11 shapes of "
    "~3,900 answers: tiny shapes (test id 100, a black triangle of ~60 pixels, read as a brown "
    "circle) and shapes covering the top-left corner taken as background (train id 577, a blue "
    "rectangle read as yellow); fixing it changes the labels of the shape benchmarks of chapters 3, "
    "4 and 9",
)
def test_decoder_agrees_with_easy_vqa_questions():
    import easy_vqa as ev

    _, colour, shape = easy_vqa.easy_vqa_shapes()
    wrong = []
    for offset, (_questions, answers, ids) in ((0, ev.get_train_questions()), (4000, ev.get_test_questions())):
        for a, i in zip(answers, ids):
            if a in easy_vqa.COLOURS and easy_vqa.COLOURS[colour[offset + i]] != a:
                wrong.append((offset + i, a))
            if a in easy_vqa.SHAPES and easy_vqa.SHAPES[shape[offset + i]] != a:
                wrong.append((offset + i, a))
    assert not wrong, f"{len(wrong)} answers disagree with the decoded pixels, e.g. {wrong[:5]}"
