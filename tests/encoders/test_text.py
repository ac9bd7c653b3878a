"""xmr_lib.encoders.text: MiniLM embeddings with an on-disk cache, bag of words / tf-idf, GloVe phrase vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xmr_lib.encoders import text as T


@pytest.fixture
def text_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path))
    T.clear_memory_cache()
    yield tmp_path / "text"
    T.clear_memory_cache()


def test_minilm_paraphrases_closer_than_unrelated(text_cache):
    e = T.encode(["a photo of a dog", "a picture of a puppy playing", "a red sports car"], device="cpu")
    assert e.shape == (3, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    s = e @ e.T
    # measured: 0.71 vs 0.17
    assert s[0, 1] > 0.5 and s[0, 2] < 0.35 and s[0, 1] > s[0, 2] + 0.3


def test_cache_hit_needs_no_model(text_cache, monkeypatch):
    sents = ["a cat on a mat", "two dogs in the snow", "a cat on a mat"]
    first = T.encode(sents, device="cpu")
    assert np.array_equal(first[0], first[2])  # duplicates encoded once
    assert list(text_cache.rglob("*.npz"))  # written to $XMR_CACHE_DIR/text/
    T.clear_memory_cache()  # as in a new process: read back from disk

    def boom(*a, **k):
        raise AssertionError("the model must not be called on a cache hit")

    monkeypatch.setattr(T, "load_text_model", boom)
    again = T.encode(sents[:2], device="cpu")
    assert np.array_equal(again, first[:2])
    with pytest.raises(AssertionError, match="must not be called"):
        T.encode(["a sentence never seen"], device="cpu")
    monkeypatch.undo()
    # cache=False always runs the model and gives the same vectors
    fresh = T.encode(sents[:1], device="cpu", cache=False)
    assert np.allclose(fresh, first[:1], atol=1e-5)


def test_encode_input_checks(text_cache):
    assert T.encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match="single str"):
        T.encode("a dog")
    with pytest.raises(ValueError, match=r"sentences\[1\]"):
        T.encode(["a dog", 3])
    with pytest.raises(ValueError, match="batch_size"):
        T.encode(["a dog"], batch_size=0)


def test_bag_of_words_by_hand():
    x, vocab = T.bag_of_words(["a cat sat", "the cat and the dog"])
    assert vocab == ["a", "and", "cat", "dog", "sat", "the"]
    assert x.dtype == np.float32
    assert x.tolist() == [[1, 0, 1, 0, 1, 0], [0, 1, 1, 1, 0, 2]]
    xb, _ = T.bag_of_words(["the the cat"], vocab=["cat", "the", "zebra"], binary=True)
    assert xb.tolist() == [[1, 1, 0]]
    xm, vm = T.bag_of_words(["b b b a a c"], max_features=2)
    assert vm == ["a", "b"] and xm.tolist() == [[2, 3]]
    with pytest.raises(ValueError, match="max_features"):
        T.bag_of_words(["a"], vocab=["a"], max_features=3)


def test_tfidf_by_hand():
    db = ["a cat sat", "the cat and the dog"]
    x, vocab = T.tfidf(["cat dog"], fit_texts=db, norm=None)
    idf = {w: math.log((1 + 2) / (1 + df)) + 1 for w, df in {"cat": 2, "dog": 1}.items()}
    row = dict(zip(vocab, x[0]))
    assert row["cat"] == pytest.approx(idf["cat"]) and row["dog"] == pytest.approx(idf["dog"])
    assert row["sat"] == 0 and row["the"] == 0
    xn, _ = T.tfidf(db)
    assert np.allclose(np.linalg.norm(xn, axis=1), 1.0)


def test_glove_similarities_and_phrase_averaging():
    g = T.glove()
    assert len(g) == 400_000 and g.dim == 50 and "cat" in g and g.get("qwzxqvkj") is None
    cat_dog, cat_plane = T.phrase_similarity("cat", "dog"), T.phrase_similarity("cat", "airplane")
    assert cat_dog > cat_plane and cat_dog == pytest.approx(0.9218, abs=1e-3)  # measured 0.92 / 0.37
    v = T.word_vector("hook, claw")
    assert np.allclose(v, (g["hook"] + g["claw"]) / 2)
    assert np.allclose(T.word_vector("Ankle_Boot"), (g["ankle"] + g["boot"]) / 2)
    assert np.allclose(T.word_vector("sea-lion qwzxqvkj"), (g["sea"] + g["lion"]) / 2)  # OOV word skipped
    assert T.phrase_words("T-shirt/top", g) == ["t-shirt", "top"]  # known hyphenated word
    with pytest.raises(ValueError, match="qwzxqvkj"):
        T.word_vector("qwzxqvkj")
    assert not T.word_vector("qwzxqvkj", missing="zero").any()
    vs, found = T.word_vectors(["cat", "qwzxqvkj", "sea lion"])
    assert vs.shape == (3, 50) and found.tolist() == [True, False, True] and not vs[1].any()
