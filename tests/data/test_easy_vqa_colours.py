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


@pytest.fixture(scope="module")
def shapes():
    return easy_vqa.easy_vqa_shapes()


def test_decoder_agrees_with_easy_vqa_questions(shapes):
    """The labels agree with every colour and shape answer of easy-vqa's questions (the dataset's own labels); the
    old pixel decoder misread 7 colours and 11 shapes of ~3,900 answers (tiny shapes, a shape over the corner)."""
    import easy_vqa as ev

    _, colour, shape = shapes
    wrong = []
    for offset, (_questions, answers, ids) in ((0, ev.get_train_questions()), (4000, ev.get_test_questions())):
        for a, i in zip(answers, ids):
            if a in easy_vqa.COLOURS and easy_vqa.COLOURS[colour[offset + i]] != a:
                wrong.append((offset + i, a))
            if a in easy_vqa.SHAPES and easy_vqa.SHAPES[shape[offset + i]] != a:
                wrong.append((offset + i, a))
    assert not wrong, f"{len(wrong)} answers disagree with the decoded pixels, e.g. {wrong[:5]}"


def _answer(question: str, colour: str, shape: str) -> str | None:
    """easy-vqa's answer to one of its questions about a picture of a ``colour`` ``shape`` (its generator's
    templates: what shape / what colour, some naming the other attribute, and yes/no questions, some negated); None
    where easy-vqa would not ask it (a what-question naming another colour or shape than the picture's)."""
    words = question.rstrip("?").split()
    named = [w for w in words if w in NAMED_RGB or w in easy_vqa.SHAPES]
    if words[0] == "what":
        if any(w not in (colour, shape) for w in named):
            return None
        return colour if "color" in words else shape
    present = named == [colour] or named == [shape]
    negated = "not" in words or "no" in words
    return "yes" if present != negated else "no"


def test_pixel_decoder_answers_every_question(shapes):
    """The pixel decoder alone (no question read) answers all ~48,000 easy-vqa questions as easy-vqa does, yes/no
    questions included: it is right on the images whose questions leave the colour or shape open, too."""
    import easy_vqa as ev

    images, _, _ = shapes
    colour, shape = easy_vqa._decode_pixels(images)
    wrong = []
    for offset, (questions, answers, ids) in ((0, ev.get_train_questions()), (4000, ev.get_test_questions())):
        for q, a, i in zip(questions, answers, ids):
            if _answer(q, easy_vqa.COLOURS[colour[offset + i]], easy_vqa.SHAPES[shape[offset + i]]) != a:
                wrong.append((offset + i, q, a))
    assert not wrong, f"{len(wrong)} questions answered otherwise than easy-vqa, e.g. {wrong[:5]}"


def test_small_shapes_and_shapes_over_the_corner(shapes):
    images, colour, shape = shapes
    for i, want in ((4000 + 100, ("black", "triangle")), (577, ("blue", "rectangle")), (422, None)):
        img = images[i]
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        values, counts = np.unique(border, axis=0, return_counts=True)
        assert (easy_vqa._background(img) == values[counts.argmax()]).all()
        mask = easy_vqa._shape_mask(img)
        assert 0 < mask.sum() < img.shape[0] * img.shape[1] / 2, "the mask is the shape, not the background"
        if want is not None:
            assert (easy_vqa.COLOURS[colour[i]], easy_vqa.SHAPES[shape[i]]) == want
            assert _nearest_name(np.median(img[mask & _inner_mask(img)], 0)) == want[0]
    assert (images[577, 0, 0] != easy_vqa._background(images[577])).any()  # the shape touches the corner


def test_question_labels_read_every_kind_of_question():
    questions = [
        ("what shape is present?", "circle", 0),
        ("what is the red shape?", "triangle", 1),  # names the colour too
        ("what color is the rectangle?", "teal", 2),  # names the shape too
        ("is there not a circle?", "yes", 3),
        ("is no triangle present?", "yes", 3),  # two shapes ruled out: a rectangle
        ("does the image contain a blue shape?", "yes", 3),
        ("is there a green shape?", "no", 4),  # one colour ruled out: colour still open
        ("is there a triangle in the image?", "yes", 5),
        ("what shape is in the image?", "circle", 5),  # contradiction: left open
    ]
    colour, shape = easy_vqa._question_labels(tuple(zip(*questions)), 6)
    C, S = easy_vqa.COLOURS.index, easy_vqa.SHAPES.index
    assert colour.tolist() == [-1, C("red"), C("teal"), C("blue"), -1, -1]
    assert shape.tolist() == [S("circle"), S("triangle"), S("rectangle"), S("rectangle"), -1, -1]
