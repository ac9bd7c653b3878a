"""Vectorised R-MAC and batched multi-scale extraction against loops: ``python -m benchmarks.pooling``

1. **R-MAC** on 64 feature maps of 1280×14×14 (EfficientNet-Lite0 at 448 px): ``xmr_lib.retrieval.pooling.rmac_pool``
   (all regions at once, :func:`xmr_lib.retrieval.pooling.regional_max`) against the per-region loop written below — the
   way cnnimageretrieval-pytorch's ``rmac`` does it (slice, ``max_pool2d``, L2, accumulate). Same output to 1e-5,
   speed-up ≥ 5× is the target. One extra row runs the same loop on channels-last maps, for the record: the loop
   is slow mostly because every slice of a standard (NCHW) map is a strided copy.
2. **Multi-scale extraction** (scales 1, 1/√2, 1/2; cirtorch ``extract_ms``): ``extract_multiscale`` (batched over
   images) against a loop over images (batch size 1, as cirtorch's ``extract_vectors``), with the EfficientNet-Lite0
   trunk when its weights are installed, else a small conv stack.
3. For reference, the time of every registered pooling on the same maps.

Timings are medians over interleaved repeats (the baseline and the candidate alternate, so load on a shared
machine hits both alike); the speed-up is the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from xmr_lib.retrieval import pooling


def rmac_region_loop(x: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """The baseline: R-MAC with a Python loop over the regions of :func:`xmr_lib.retrieval.pooling.rmac_regions`."""
    v = torch.zeros(x.shape[0], x.shape[1], dtype=x.dtype, device=x.device)
    for t, le, h, w in pooling.rmac_regions(x.shape[2], x.shape[3], levels).tolist():
        r = F.max_pool2d(x[:, :, t : t + h, le : le + w], (h, w)).flatten(1)
        v += r / (r.norm(dim=1, keepdim=True) + 1e-6)
    return v / (v.norm(dim=1, keepdim=True) + 1e-6)


@torch.no_grad()
def multiscale_image_loop(trunk, images, pool_fn, scales, power=1.0):
    """The baseline: one image at a time, one trunk call per image and scale (cirtorch ``extract_vectors``)."""
    out = []
    for i in range(len(images)):
        img = images[i : i + 1]
        per = []
        for s in scales:
            b = img if s == 1 else F.interpolate(img, scale_factor=float(s), mode="bilinear", align_corners=False)
            per.append(pool_fn(trunk(b)))
        out.append(pooling.combine_scales(torch.stack(per), power))
    return torch.cat(out)


def _interleaved(fns: dict, repeats: int) -> dict[str, list[float]]:
    for f in fns.values():
        f()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return times


def _median(v):
    v = sorted(v)
    return v[len(v) // 2]


def _trunk():
    try:
        from xmr_lib.encoders import backbones as models

        m = models.efficientnet_lite0(pretrained=True)
        trunk = getattr(m, "extract_features", None) or m
        return trunk, "EfficientNet-Lite0 trunk"
    except Exception:  # noqa: BLE001 - any missing piece → the stand-in trunk
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(64, 128, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(128, 256, 3, stride=2, padding=1),
            torch.nn.ReLU(),
        ).eval()
        return net, "4-layer conv stand-in trunk (EfficientNet-Lite0 not available)"


def bench_rmac(repeats: int, n: int = 64, c: int = 1280, hw: int = 14) -> tuple[float, float]:
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(n, c, hw, hw, generator=g))
    ref, got = rmac_region_loop(x), pooling.rmac_pool(x)
    err = float((ref - got).abs().max())
    xcl = x.contiguous(memory_format=torch.channels_last)
    t = _interleaved(
        {
            "loop": lambda: rmac_region_loop(x),
            "vectorised": lambda: pooling.rmac_pool(x),
            "loop_cl": lambda: rmac_region_loop(xcl),
        },
        repeats,
    )
    ratio = _median([a / b for a, b in zip(t["loop"], t["vectorised"])])
    n_reg = len(pooling.rmac_regions(hw, hw))
    print(f"R-MAC, {n}×{c}×{hw}×{hw} maps, {n_reg} regions, {torch.get_num_threads()} thread(s)")
    print(f"  per-region loop (NCHW maps)         {_median(t['loop']) * 1e3:8.1f} ms")
    print(f"  rmac_pool (vectorised)              {_median(t['vectorised']) * 1e3:8.1f} ms")
    print(f"  speed-up                            {ratio:8.1f} ×   (target ≥ 5×: {'PASS' if ratio >= 5 else 'FAIL'})")
    print(f"  max |difference|                    {err:8.1e}     (target ≤ 1e-5: {'PASS' if err <= 1e-5 else 'FAIL'})")
    print(f"  [for the record] loop on channels-last maps {_median(t['loop_cl']) * 1e3:.1f} ms")
    return ratio, err


def bench_multiscale(repeats: int, n_images: int, size: int) -> float:
    trunk, name = _trunk()
    g = torch.Generator().manual_seed(1)
    imgs = torch.randn(n_images, 3, size, size, generator=g)
    scales = (1.0, 2**-0.5, 0.5)
    gem = pooling.GeM(p=3.0, learnable=False)
    batched = lambda: pooling.extract_multiscale(trunk, imgs, gem, scales, power=3.0, batch_size=n_images, device="cpu")
    looped = lambda: multiscale_image_loop(trunk, imgs, gem, scales, power=3.0)
    err = float((batched() - looped()).abs().max())
    t = _interleaved({"loop": looped, "batched": batched}, repeats)
    ratio = _median([a / b for a, b in zip(t["loop"], t["batched"])])
    print(
        f"\nMulti-scale GeM descriptors, {n_images} images of {size} px, scales {[round(s, 3) for s in scales]}, {name}"
    )
    print(f"  loop over images (batch 1)          {_median(t['loop']) * 1e3:8.1f} ms")
    print(f"  extract_multiscale (batched)        {_median(t['batched']) * 1e3:8.1f} ms")
    print(f"  speed-up                            {ratio:8.1f} ×   max |difference| {err:.1e}")
    return ratio


def bench_poolings(repeats: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(64, 1280, 14, 14, generator=g))
    fns = {name: (lambda name=name: pooling.pool(name, x)) for name in pooling.pooling_names()}
    t = _interleaved(fns, repeats)
    print(
        "\nEvery pooling on the same 64×1280×14×14 maps (median ms): "
        + ", ".join(f"{k} {_median(v) * 1e3:.1f}" for k, v in t.items())
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--images", type=int, default=16, help="images for the multi-scale benchmark")
    ap.add_argument("--size", type=int, default=224, help="image side for the multi-scale benchmark")
    ap.add_argument("--skip-multiscale", action="store_true")
    ap.add_argument("--check", action="store_true", help="exit 1 unless R-MAC is ≥ 5× faster and equal to 1e-5")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: what xmr_lib.setup picks — one per idle core)",
    )
    args = ap.parse_args(argv)
    from xmr_lib.core.setup import default_threads

    torch.set_num_threads(args.threads or default_threads())
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {torch.get_num_threads()} threads")
    ratio, err = bench_rmac(args.repeats)
    if not args.skip_multiscale:
        bench_multiscale(max(3, args.repeats // 3), args.images, args.size)
    bench_poolings(max(3, args.repeats // 3))
    return 1 if args.check and (ratio < 5 or err > 1e-5) else 0


if __name__ == "__main__":
    raise SystemExit(main())
