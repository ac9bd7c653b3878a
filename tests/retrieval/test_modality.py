"""The modality probe of chapters 3 and 4 (retrieval/modality.modality_probe_accuracy), checked by hand-made
cases: separable modalities score ~1.0, two samples of one distribution ~0.5 (chance, the classes are balanced)."""

import numpy as np
import pytest
import torch

from xmr_lib.retrieval.modality import modality_probe_accuracy

pytest.importorskip("sklearn")


def test_separable_modalities_score_one():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 6))
    assert modality_probe_accuracy(a, a + 4.0) == 1.0  # a shift of 4 σ along every axis
    b = a.copy()
    b[:, 0] = np.abs(b[:, 0]) + 0.5  # one coordinate splits them: > 0.5 vs < 0
    a[:, 0] = -np.abs(a[:, 0]) - 0.5
    assert modality_probe_accuracy(a, b) == 1.0


def test_separability_does_not_depend_on_the_scale():
    """Standardisation: L2-normalised features (entries ~0.05) and ±1 codes are probed alike."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16)) + 0.5
    big = modality_probe_accuracy(a, b, seed=3)
    assert big > 0.85
    assert modality_probe_accuracy(a * 1e-3, b * 1e-3, seed=3) == pytest.approx(big, abs=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_one_distribution_scores_chance(seed):
    rng = np.random.default_rng(100 + seed)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    # 300 held-out rows: the standard deviation of a chance accuracy is sqrt(.25 / 300) ≈ 0.03
    assert abs(modality_probe_accuracy(a, b, seed=seed) - 0.5) < 0.1


def test_unbalanced_modalities_are_subsampled_to_chance():
    """Five texts per image (chapter 4): answering "text" always would score 5/6 without the subsample."""
    rng = np.random.default_rng(7)
    acc = [modality_probe_accuracy(rng.normal(size=(100, 4)), rng.normal(size=(500, 4)), seed=s) for s in range(5)]
    assert abs(np.mean(acc) - 0.5) < 0.08


def test_seeded_and_accepts_tensors():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(60, 5)), rng.normal(size=(90, 5)) + 0.3
    assert modality_probe_accuracy(a, b, seed=5) == modality_probe_accuracy(torch.from_numpy(a), b.tolist(), seed=5)


def test_bad_inputs_name_the_argument():
    a = np.zeros((10, 3))
    with pytest.raises(ValueError, match="image_z: expected a 2-D array"):
        modality_probe_accuracy(a[0], a)
    with pytest.raises(ValueError, match=r"image_z, text_z: expected .*one dimension d"):
        modality_probe_accuracy(a, a[:, :2])
    with pytest.raises(ValueError, match=r"image_z, text_z: expected \(n >= 4"):
        modality_probe_accuracy(a[:3], a)
    with pytest.raises(ValueError, match="test_fraction"):
        modality_probe_accuracy(a, a, test_fraction=0.9)
