"""Tests for xmr_lib.chapters.ch03.batched_hashing: R seeds of the chapter's hashing model trained as one batched
network give each seed the model, history and codes that the one-by-one training gives (R = 3)."""

from dataclasses import replace

import numpy as np
import pytest

from xmr_lib.chapters.ch03 import batched_hashing as BH
from xmr_lib.chapters.ch03 import hashing as H


def _toy(n=96, c=6, d=24, t=30, seed=0):
    r = np.random.default_rng(seed)
    lab = np.zeros((n, c), np.float32)
    lab[np.arange(n), r.integers(0, c, n)] = 1
    lab[np.arange(n), r.integers(0, c, n)] = 1
    proto_i, proto_t = r.normal(size=(c, d)), r.normal(size=(c, t))
    x = (lab @ proto_i + 0.3 * r.normal(size=(n, d))).astype(np.float32)
    y = ((lab @ proto_t + 0.3 * r.normal(size=(n, t))) > 0.8).astype(np.float32)
    return x, y, lab


SMALL = H.HashingConfig(
    n_bits=8, common_dim=16, image_hidden=(32,), text_hidden=32, epochs=3, batch_size=32, lr_start=3e-3, lr_end=1e-3
)
CONFIGS = {
    "full": SMALL,
    "baseline1": H.ablation_config(SMALL, "Baseline1"),
    "in_batch": replace(SMALL, pair_scope="in_batch"),
    "literal_shared_mean": replace(SMALL, entropy_mode="literal", quant_target="shared", loss_reduction="mean"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_batched_runs_equal_one_by_one_runs(name):
    x, y, lab = _toy()
    cfg, seeds = CONFIGS[name], [0, 1, 2]
    batched = BH.train_cross_modal_hashing_batched(x, y, lab, cfg, seeds, device="cpu", probe_every=2)
    assert len(batched) == 3
    for s, mb in zip(seeds, batched):
        ms = H.train_cross_modal_hashing(x, y, lab, cfg, seed=s, device="cpu", progress=False, probe_every=2)
        for (n, p), (_, q) in zip(ms.named_parameters(), mb.named_parameters()):
            assert (p - q).abs().max().item() <= 1e-5, n
        for mod, inp in (("image", x), ("text", y)):
            assert np.array_equal(ms.encode(inp, mod), mb.encode(inp, mod))
            assert np.allclose(ms.encode(inp, mod, what="soft"), mb.encode(inp, mod, what="soft"), atol=1e-5)
        assert len(mb.history) == cfg.epochs and list(ms.history[-1]) == list(mb.history[-1])
        for hs, hb in zip(ms.history, mb.history):
            for k, v in hs.items():
                if k not in ("seconds", "pairs_per_s"):
                    assert hb[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    # three different runs, each of which learnt
    assert not np.array_equal(batched[0].encode(x, "image"), batched[1].encode(x, "image"))
    assert all(m.history[-1]["image/pairs"] < m.history[0]["image/pairs"] for m in batched)


def test_batched_training_refuses_bad_input_by_name():
    x, y, lab = _toy(20)
    with pytest.raises(ValueError, match="seeds"):
        BH.train_cross_modal_hashing_batched(x, y, lab, SMALL, [], device="cpu")
    with pytest.raises(ValueError, match="text_y"):
        BH.train_cross_modal_hashing_batched(x, y[:5], lab, SMALL, [0], device="cpu")
