"""Thesis ch. 8's joint (bilinear, Eq. 8.1) and auto-encoder common spaces (xmr_lib.chapters.ch10.latent_spaces)."""

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch10 import common_space as cs
from xmr_lib.chapters.ch10 import latent_spaces as ls


def test_bilinear_scores_by_hand():
    a = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    b = torch.tensor([[3.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    w = torch.tensor([0.5, -1.0])
    s = ls.bilinear_scores(a, b, w, 0.25)
    # s_ij = Σ_k w_k a_ik b_jk + 0.25
    want = torch.tensor([[1.5 - 2 + 0.25, 0.5 - 2 + 0.25, -4 + 0.25], [1 + 0.25, 1 + 0.25, 2 + 0.25]])
    torch.testing.assert_close(s, want)
    with pytest.raises(ValueError, match="a, b, w"):
        ls.bilinear_scores(a, b[:, :1], w)


def test_bilinear_forward_is_the_joint_vector_of_each_pair():
    net = ls.BilinearJointNet(5, 4, hidden=8, rank=6, seed=0)
    x, t = torch.randn(3, 5), torch.randn(3, 4)
    full = net(x, t)
    diag = net.out(net.joint(x, t))[:, 0]
    torch.testing.assert_close(full.diagonal(), diag)
    with pytest.raises(ValueError, match="x_text"):
        net(x, torch.randn(3, 5))


def test_autoencoder_loss_by_hand_when_alpha_zero_and_codes_coincide():
    torch.manual_seed(0)
    m = ls.CorrespondenceAutoencoder(3, 2, hidden=4, latent=2)
    x, t = torch.randn(5, 3), torch.randn(5, 2)
    zi, zt = m.codes(x, t)
    rec = sum(((m.dec_image(z) - x) ** 2).mean() + ((m.dec_text(z) - t) ** 2).mean() for z in (zi, zt))
    torch.testing.assert_close(ls.autoencoder_loss(m, x, t, 0.0), rec)
    extra = ls.autoencoder_loss(m, x, t, 2.0) - rec
    torch.testing.assert_close(extra, 2.0 * ((zi - zt) ** 2).sum(1).mean())


def _toy(seed=0, n=400, c=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    xi = (rng.normal(size=(c, 10))[y] * 1.5 + rng.normal(size=(n, 10))).astype(np.float32)
    xt = (rng.normal(size=(c, 8))[y] * 1.5 + rng.normal(size=(n, 8))).astype(np.float32)
    return cs.CrossModalSplit(xi[:300], xt[:300], y[:300], xi[300:], xt[300:], y[300:], [str(i) for i in range(c)])


@pytest.mark.parametrize("method", ["bilinear", "autoencoder"])
def test_training_lowers_the_loss_and_retrieves_above_chance(method):
    sp = _toy()
    cfg = ls.LatentSpaceConfig(method=method, hidden=32, latent=8, iterations=120, batch_size=64, lr=3e-3)
    r = ls.run_latent_space(sp, cfg, seed=0)
    h = r["history"]["loss"]
    assert len(h) == 120 and np.mean(h[-10:]) < 0.7 * np.mean(h[:10])
    assert r["average"] > 0.6  # chance ≈ 0.25 with 4 balanced classes
    assert set(r) >= {"i2t", "t2i", "average", "seconds", "test_repr"}


def test_score_map_matches_cross_modal_map_on_negative_distances():
    sp = _toy()
    d = cs.euclidean_distances(sp.test_image[:, :8], sp.test_text)
    got = ls.score_map(-d, sp.test_labels)
    want = cs.cross_modal_map(sp.test_image[:, :8], sp.test_text, sp.test_labels)
    assert got == pytest.approx(want)
    with pytest.raises(ValueError, match="scores"):
        ls.score_map(-d[:5], sp.test_labels)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="method"):
        ls.LatentSpaceConfig(method="gan")
    with pytest.raises(ValueError, match="alpha"):
        ls.LatentSpaceConfig(alpha=-1.0)
