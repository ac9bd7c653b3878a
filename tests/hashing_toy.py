"""The toy paired data and the small network of chapter 3's hashing tests (``tests/chapters/test_hashing.py`` and
``tests/chapters/test_batched_hashing.py`` build the same nets on the same data from here)."""

from __future__ import annotations

import numpy as np

#: a small :class:`xmr_lib.chapters.ch03.hashing.HashingConfig` (every knob but ``epochs``): a hidden image layer,
#: the multi-scale text net, all loss terms at their defaults
SMALL_NET = dict(n_bits=8, common_dim=16, image_hidden=(32,), text_hidden=32, batch_size=32, lr_start=3e-3, lr_end=1e-3)


def toy_pairs(n: int = 160, c: int = 6, d: int = 24, t: int = 30, seed: int = 0):
    """``(x, y, labels)``: n image features (n, d), binary bag-of-words texts (n, t) and two-hot labels (n, c) from
    c class prototypes per modality plus noise."""
    r = np.random.default_rng(seed)
    lab = np.zeros((n, c), np.float32)
    lab[np.arange(n), r.integers(0, c, n)] = 1
    lab[np.arange(n), r.integers(0, c, n)] = 1
    proto_i, proto_t = r.normal(size=(c, d)), r.normal(size=(c, t))
    x = (lab @ proto_i + 0.3 * r.normal(size=(n, d))).astype(np.float32)
    y = ((lab @ proto_t + 0.3 * r.normal(size=(n, t))) > 0.8).astype(np.float32)
    return x, y, lab
