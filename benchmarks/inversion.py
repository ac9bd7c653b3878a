"""Images generated per second by BatchNorm-statistics inversion (:func:`xmr_lib.train.inversion.invert_bn`):

    python -m benchmarks.inversion [--device auto] [--steps 50] [--quick]

Two teachers: the small BN trunk of notebooks 05-07 (:func:`xmr_lib.train.incremental.make_net`, 32 px) and the
pretrained EfficientNet-Lite0 (224 px, 49 BN layers). For each batch size the table shows the wall time of
``steps`` Adam steps on the whole batch and the images per second that makes (a generated image costs
``steps`` forward + backward passes; the thesis uses 2,000 steps, so divide by 2000 / steps for its setting).
On a GPU larger batches amortise the kernel launches; on a CPU the rate is about flat in the batch size.
"""

from __future__ import annotations

import argparse

import torch

from xmr_lib.core import setup as _setup
from xmr_lib.encoders import backbones as models
from xmr_lib.train import incremental as inc
from xmr_lib.train import inversion


def _teachers(quick: bool):
    tiny = inc.make_net(10, backbone="tiny", width=16).eval()
    yield "tiny BN CNN", tiny, (3, 32, 32), (16, 64) if quick else (16, 64, 256), None
    if not quick:
        lite = models.efficientnet_lite0()
        norm = (models.LITE0_MEAN, models.LITE0_STD)
        yield "EfficientNet-Lite0", lite, (3, 224, 224), (8, 32), norm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="tiny teacher, small batches only")
    args = ap.parse_args(argv)
    device = _setup.resolve_device(args.device)
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {name}; {args.steps} Adam steps per batch")
    print(f"{'teacher':20s} {'image':>11s} {'batch':>6s} {'seconds':>8s} {'images/s':>9s} {'img-steps/s':>12s}")
    for label, model, shape, batches, norm in _teachers(args.quick):
        for b in batches:
            res = inversion.invert_bn(
                model,
                n_images=b,
                image_shape=shape,
                steps=args.steps,
                batch_size=b,
                lambda_cluster=0.0,
                squared=False,
                normalize=norm,
                device=device,
                progress=False,
                log_every=args.steps,
            )
            ips = res.images_per_second
            print(
                f"{label:20s} {'x'.join(map(str, shape[1:])):>11s} {b:6d} {res.seconds:8.2f} {ips:9.1f} "
                f"{ips * args.steps:12.0f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
