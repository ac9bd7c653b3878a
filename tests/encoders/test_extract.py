"""xmr_lib.encoders.extract: aspect-kept inputs, same-shape batching, the on-disk cache of trunk maps, streamed
poolings."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.core import cache
from xmr_lib.encoders import extract
from xmr_lib.retrieval import pooling


class Counting(nn.Module):
    """A 1×1 convolution with fixed weights (channel c of the output = (c + 1) × the mean of the RGB inputs) that
    counts its forward passes and the batch sizes it saw."""

    def __init__(self, out_channels: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.arange(1, out_channels + 1, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 1, 1) / 3
            )
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.conv(x)


def _img(h, w, value):
    return np.full((h, w, 3), value, np.uint8)


def test_to_input_keeps_the_aspect_and_normalises():
    # a 2 × 4 image of value 51 (= 0.2 × 255), longer side 8: (3, 4, 8), every pixel (0.2 - 0.5) / 0.25 = -1.2
    x = extract.to_input(_img(2, 4, 51), 8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert x.shape == (3, 4, 8) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, -1.2), atol=1e-6)
    # portrait: the longer side is the height
    assert extract.to_input(_img(30, 10, 0), 12, (0, 0, 0), (1, 1, 1)).shape == (3, 12, 4)
    # per-channel statistics; grey input becomes RGB
    y = extract.to_input(np.zeros((5, 5), np.uint8), 5, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 4.0))
    assert torch.allclose(y[:, 0, 0], torch.tensor([-0.1, -0.1, -0.075]))
    # never a zero side
    assert extract.to_input(_img(1, 100, 0), 10, (0, 0, 0), (1, 1, 1)).shape == (3, 1, 10)


def test_run_batched_batches_same_shapes_and_returns_a_list_otherwise():
    net = Counting()
    same = [torch.full((3, 2, 2), float(i)) for i in range(5)]
    out = extract.run_batched(net, same, batch_size=2)
    assert isinstance(out, torch.Tensor) and out.shape == (5, 2, 2, 2)
    assert net.batches == [2, 2, 1]
    assert torch.allclose(out[3, 1], torch.full((2, 2), 2 * 3.0))  # channel 1 = 2 × mean of the inputs (3)
    net.batches.clear()
    mixed = [torch.ones(3, 2, 2), lambda: torch.ones(3, 2, 3), torch.ones(3, 2, 2)]  # a maker is called
    out = extract.run_batched(net, mixed, batch_size=3)
    assert isinstance(out, list) and [tuple(o.shape) for o in out] == [(2, 2, 2), (2, 2, 3), (2, 2, 2)]
    assert net.batches == [1, 1, 1]  # mixed chunk: one input at a time


def test_fingerprint_is_stable_and_sees_length_and_content():
    imgs = [_img(4, 4, i) for i in range(20)]
    f = extract.fingerprint(imgs)
    assert len(f) == 16 and f == extract.fingerprint([im.copy() for im in imgs])
    assert f != extract.fingerprint(imgs[:19])
    assert f != extract.fingerprint(imgs[:-1] + [_img(4, 4, 99)])  # the last image is always sampled


def test_pool_all_streams_chunks_and_mixed_shapes():
    maps = torch.arange(4 * 2 * 2 * 3, dtype=torch.float32).view(4, 2, 2, 3)
    fns = {"sum": lambda m: m.sum(dim=(2, 3)), "mac": lambda m: pooling.mac_pool(m, normalize=False)}
    out = extract.pool_all(maps, fns, nn.Identity(), batch_size=3)
    assert set(out) == {"sum", "mac"} and out["sum"].shape == (4, 2) and out["sum"].dtype == np.float32
    assert out["sum"][0].tolist() == [15.0, 51.0]  # 0+…+5 and 6+…+11
    assert out["mac"][1].tolist() == [17.0, 23.0]
    as_list = [m for m in maps] + [torch.ones(2, 1, 1)]  # a last map of another shape
    out2 = extract.pool_all(as_list, fns, nn.Identity(), batch_size=2)
    assert np.array_equal(out2["sum"][:4], out["sum"]) and out2["sum"][4].tolist() == [1.0, 1.0]


def _extractor(lower=None, size=8):
    return extract.MapExtractor(
        lower or Counting(),
        nn.Identity(),
        model="toy",
        lower_blocks=3,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        image_size=size,
        batch_size=2,
    )


def test_maps_are_cached_and_the_cache_returns_the_same_arrays(tmp_path):
    imgs = [_img(4, 8, 10 * i) for i in range(5)]
    ex = _extractor()
    first = ex.maps(imgs, "toyset", "db", root=tmp_path)
    assert first.shape == (5, 2, 4, 8) and ex.lower.batches == [2, 2, 1]
    ex.lower.batches.clear()
    again = ex.maps(imgs, "toyset", "db", root=tmp_path)
    assert ex.lower.batches == [] and torch.equal(first, again)  # read back, not recomputed
    assert len(list(tmp_path.glob("*.np[yz]"))) == 1
    half = ex.maps(imgs, "toyset", "db", scale=0.5, root=tmp_path)  # another scale: another entry
    assert half.shape == (5, 2, 2, 4) and len(list(tmp_path.glob("*.np[yz]"))) == 2
    assert torch.allclose(first[2, 0], torch.full((4, 8), 20 / 255), atol=1e-6)


def test_maps_of_mixed_shapes_round_trip_through_the_cache(tmp_path):
    imgs = [_img(4, 8, 1), _img(8, 4, 2), _img(6, 6, 3)]
    ex = _extractor()
    first = ex.maps(imgs, "toyset", "queries", root=tmp_path)
    again = ex.maps(imgs, "toyset", "queries", root=tmp_path)
    assert isinstance(first, list) and [tuple(m.shape) for m in first] == [(2, 4, 8), (2, 8, 4), (2, 8, 8)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    d = ex.describe(again, {"mac": pooling.mac_pool})
    assert d["mac"].shape == (3, 2)


def test_cache_key_fields_are_the_notebooks():
    imgs = [_img(4, 8, i) for i in range(3)]
    ex = _extractor(size=160)
    key = ex.key(imgs, "photo_instances_seed0", "train", scale=0.7071)
    assert key == {
        "model": "toy",
        "lower_blocks": 3,
        "dataset": "photo_instances_seed0",
        "part": "train",
        "size": 113,
        "images": extract.fingerprint(imgs),
    }
    assert cache.key_hash(key) == cache.key_hash(dict(reversed(list(key.items()))))


def test_final_maps_runs_upper_one_map_at_a_time():
    ex = _extractor()
    ex.upper = nn.ReLU()
    maps = torch.tensor([-1.0, 2.0]).view(1, 2, 1, 1).repeat(6, 1, 1, 1)
    out = ex.final_maps(maps, 4)
    assert len(out) == 4 and out[0].shape == (2, 1, 1) and out[0].flatten().tolist() == [0.0, 2.0]
