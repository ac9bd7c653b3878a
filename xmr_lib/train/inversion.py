"""Representative data generation from a frozen network's BatchNorm statistics (thesis §7.4.2; Yin et al. [255]).

A network trained with BatchNorm keeps, in every BN layer l, the running mean ``μ̂_l`` and variance ``σ̂²_l`` of that
layer's input over its training data: a compact summary of the data it has seen. Starting from Gaussian noise Z, the
images are optimised (the network stays frozen, in eval mode) so that the batch statistics of Z at every BN layer
match the stored ones — images that "look like" the old data to the network:

``L_BN = λ_BN Σ_l ( ||μ_l(Z) − μ̂_l||²₂ + ||σ²_l(Z) − σ̂²_l||²₂ )``                       (Eq. 7.4)

The chapter adds a clustering loss on the network's embeddings so that the generated batch forms K well separated
groups of P images each (the "classes" Y' of the generated images; no classifier is needed):

``L_cluster = λ_cluster Σ_k max(Δ + max_p ||f(z_kp) − M_k||₂ − min_{z ∉ k} ||f(z) − M_k||₂, 0)``   (Eq. 7.5)

and optimises ``L_g = L_BN + L_cluster`` with Adam (lr 0.5 in the thesis' 0-255 input space, 2000 steps).
DeepInversion's other terms are available as options (all off by default, as in the thesis): a cross-entropy on
target classes (needs a classifier), total-variation and L2 image priors, random jitter and flips.

Building blocks
---------------
- :class:`BNStatistics` — a context manager that hooks every BatchNorm layer, records the batch mean / variance of
  its input at each forward pass, and removes its hooks on exit (DeepInversion's released code left them attached).
- :func:`bn_matching_loss` (Eq. 7.4), :func:`clustering_loss` (Eq. 7.5), :func:`total_variation`, :func:`l2_prior`.
- :func:`invert_bn` — the optimisation, batched, on ``device="auto"``, with a history of every term, per-layer
  statistics gaps and image snapshots (for "what the teacher remembers" grids); returns an :class:`InversionResult`
  (images in [0, 1], their cluster labels, images per second).

Our own implementation from the papers (the reference code is under a non-commercial licence).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core.setup import resolve_device

__all__ = [
    "BNStatistics",
    "bn_layers",
    "bn_matching_loss",
    "clustering_loss",
    "total_variation",
    "l2_prior",
    "cluster_labels",
    "InversionResult",
    "invert_bn",
]

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def bn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every BatchNorm layer of ``model`` that keeps running statistics, in module order."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, _BN_TYPES) and m.track_running_stats and m.running_mean is not None
    ]


class BNStatistics:
    """Record the batch statistics of every BatchNorm layer's input during forward passes.

    Usage::

        with BNStatistics(model) as bn:
            model(x)
            loss = bn_matching_loss(bn.means, bn.variances, bn.running_means, bn.running_variances)

    After each forward pass :attr:`means` / :attr:`variances` hold one ``(C_l,)`` tensor per layer (kept in the graph,
    so a loss on them back-propagates to the input); the mean and the biased variance are taken over every axis but
    the channel axis (batch and positions), as BatchNorm itself does in training. Hooks are removed on exit.

    Args:
        model: any module with BatchNorm layers (at least one with running statistics).
        layers: restrict to these layer names (default: all of :func:`bn_layers`).
    """

    def __init__(self, model: nn.Module, layers: Sequence[str] | None = None):
        found = bn_layers(model)
        if layers is not None:
            want = list(layers)
            names = {n for n, _ in found}
            missing = [n for n in want if n not in names]
            if missing:
                raise ValueError(f"layers: no BatchNorm layer(s) named {missing[:5]} in the model")
            found = [(n, m) for n, m in found if n in want]
        if not found:
            raise ValueError("model: has no BatchNorm layer with running statistics to match")
        self.names = [n for n, _ in found]
        self.layers = [m for _, m in found]
        self.means: list[torch.Tensor | None] = [None] * len(found)
        self.variances: list[torch.Tensor | None] = [None] * len(found)
        self._handles: list = []

    def _hook(self, i: int):
        def fn(module, inputs, output):
            x = inputs[0]
            dims = [0] + list(range(2, x.ndim))
            self.means[i] = x.mean(dim=dims)
            self.variances[i] = x.var(dim=dims, unbiased=False)

        return fn

    def __enter__(self) -> "BNStatistics":
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.layers)]
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Detach the hooks (also done on leaving the ``with`` block)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def running_means(self) -> list[torch.Tensor]:
        return [m.running_mean for m in self.layers]

    @property
    def running_variances(self) -> list[torch.Tensor]:
        return [m.running_var for m in self.layers]

    def gaps(self) -> dict[str, np.ndarray]:
        """Per-layer ``||μ_l − μ̂_l||²`` and ``||σ²_l − σ̂²_l||²`` of the last forward pass, ``(L,)`` arrays each."""
        if any(m is None for m in self.means):
            raise ValueError("no forward pass recorded yet")
        return {
            "mean": np.array([float((a.detach() - b).pow(2).sum()) for a, b in zip(self.means, self.running_means)]),
            "var": np.array(
                [float((a.detach() - b).pow(2).sum()) for a, b in zip(self.variances, self.running_variances)]
            ),
        }


def bn_matching_loss(
    means: Sequence[torch.Tensor],
    variances: Sequence[torch.Tensor],
    running_means: Sequence[torch.Tensor],
    running_variances: Sequence[torch.Tensor],
    squared: bool = True,
    layer_weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """Eq. (7.4) without λ_BN: ``Σ_l w_l (||μ_l − μ̂_l||²₂ + ||σ²_l − σ̂²_l||²₂)``.

    Args:
        means, variances: batch statistics, one ``(C_l,)`` tensor per layer (:class:`BNStatistics`).
        running_means, running_variances: the stored statistics, same shapes.
        squared: squared norms as in Eq. 7.4 (``False``: plain L2 norms, DeepInversion's ``R_feature``).
        layer_weights: ``w_l`` (default 1 each; DeepInversion weights the first layer more).
    Returns:
        a scalar; exactly 0 when every batch statistic equals the stored one.
    """
    L = len(means)
    if not (len(variances) == len(running_means) == len(running_variances) == L) or L == 0:
        raise ValueError(
            f"means, variances, running_means, running_variances: expected the same non-zero number "
            f"of layers, got {len(means)}, {len(variances)}, {len(running_means)}, "
            f"{len(running_variances)}"
        )
    w = [1.0] * L if layer_weights is None else [float(v) for v in layer_weights]
    if len(w) != L:
        raise ValueError(f"layer_weights: expected {L} weights (one per layer), got {len(w)}")
    total = means[0].new_zeros(())
    for i in range(L):
        if means[i].shape != running_means[i].shape or variances[i].shape != running_variances[i].shape:
            raise ValueError(
                f"means[{i}]: shape {tuple(means[i].shape)} does not match the stored statistics "
                f"{tuple(running_means[i].shape)}"
            )
        dm = means[i] - running_means[i].to(means[i])
        dv = variances[i] - running_variances[i].to(variances[i])
        if squared:
            term = dm.pow(2).sum() + dv.pow(2).sum()
        else:
            term = torch.linalg.vector_norm(dm) + torch.linalg.vector_norm(dv)
        total = total + w[i] * term
    return total


def clustering_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Eq. (7.5) without λ_cluster: ``Σ_k max(Δ + max_p d_k^intra − min d_k^inter, 0)``.

    For each cluster k: the mean ``M_k`` of its features; the hardest intra-cluster distance (its member farthest
    from ``M_k``) and the hardest inter-cluster distance (the nearest feature of any *other* cluster to ``M_k``);
    the hinge asks the second to exceed the first by the margin Δ.

    Args:
        features: ``(N, D)`` embeddings of the generated images (N = K·P).
        labels: ``(N,)`` cluster id of each (K distinct ids; at least 2).
        margin: Δ (1.0 in the thesis).
    Returns:
        a scalar, 0 when every cluster is separated from all others by more than Δ beyond its own radius.
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        raise ValueError(
            f"features: expected a (N, D) tensor, got "
            f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}"
        )
    labels = torch.as_tensor(labels, device=features.device).long().reshape(-1)
    if len(labels) != len(features):
        raise ValueError(f"labels: expected {len(features)} cluster ids, got {len(labels)}")
    classes, inv = torch.unique(labels, return_inverse=True)
    K = len(classes)
    if K < 2:
        raise ValueError(f"labels: the clustering loss needs at least 2 clusters, got {K}")
    if not float(margin) >= 0:
        raise ValueError(f"margin: expected Δ >= 0, got {margin!r}")
    onehot = F.one_hot(inv, K).to(features.dtype)  # (N, K)
    M = (onehot.T @ features) / onehot.sum(0)[:, None]  # (K, D) cluster means
    d = torch.cdist(features, M)  # (N, K): ||f_n − M_k||
    member = onehot.bool()
    intra = d.masked_fill(~member, float("-inf")).amax(0)  # (K,)
    inter = d.masked_fill(member, float("inf")).amin(0)  # (K,)
    return torch.clamp(float(margin) + intra - inter, min=0).sum()


def total_variation(x: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """Image prior: mean (squared) difference between neighbouring pixels of ``x`` ``(B, C, H, W)``."""
    if x.ndim != 4:
        raise ValueError(f"x: expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    dh, dw = x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1]
    if squared:
        return dh.pow(2).mean() + dw.pow(2).mean()
    return dh.abs().mean() + dw.abs().mean()


def l2_prior(x: torch.Tensor, center: float = 0.5) -> torch.Tensor:
    """Image prior: mean squared distance of the pixels ``x`` (in [0, 1]) from ``center``."""
    return (x - float(center)).pow(2).mean()


def cluster_labels(n_clusters: int, per_cluster: int) -> torch.Tensor:
    """``(K·P,)`` labels 0,0,…,1,1,…: K clusters of P images (the layout of the chapter's noise batch)."""
    if int(n_clusters) < 1 or int(per_cluster) < 1:
        raise ValueError(f"n_clusters, per_cluster: expected positive ints, got {n_clusters!r}, {per_cluster!r}")
    return torch.arange(int(n_clusters)).repeat_interleave(int(per_cluster))


@dataclass
class InversionResult:
    """What :func:`invert_bn` produced.

    Attributes:
        images: ``(N, C, H, W)`` float32 in [0, 1] on the CPU (pixels, before the network's normalisation).
        labels: ``(N,)`` int64: the cluster / target class of each image.
        history: one dict per logged step: ``{"step", "batch", "bn", "cluster", "ce", "tv", "l2", "total",
            "bn_mean_gap", "bn_var_gap"}`` (weighted terms; the gaps are unweighted Σ_l over layers).
        layer_gaps: ``{"mean": (S, L), "var": (S, L)}`` per-layer squared gaps of the first batch at the logged
            steps ``layer_steps`` ``(S,)``.
        stats: the first batch's final statistics per layer: ``{"names", "mean", "var", "running_mean",
            "running_var"}`` (lists of numpy arrays) — for generated-vs-stored plots.
        snapshots: ``[(step, (n, C, H, W) images)]`` of the first batch's first images (grids over steps).
        seconds: wall time; images_per_second: ``N / seconds``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    history: list[dict] = field(default_factory=list)
    layer_gaps: dict[str, np.ndarray] = field(default_factory=dict)
    layer_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    stats: dict[str, list] = field(default_factory=dict)
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return float(len(self.images) / max(self.seconds, 1e-9))

    def curve(self, term: str = "bn", batch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(step, value of ``term``) over the logged steps of one batch."""
        pts = [(h["step"], h[term]) for h in self.history if h["batch"] == batch]
        a = np.array(pts, dtype=float).reshape(-1, 2)
        return a[:, 0], a[:, 1]


def _split_output(out: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(embedding, logits) of a forward pass: an ``Output`` named tuple, a ``(emb, logits)`` tuple or logits."""
    if hasattr(out, "embedding") and hasattr(out, "logits"):
        return out.embedding, out.logits
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out[0], out[1]
    if isinstance(out, torch.Tensor):
        return out, out
    raise ValueError(f"model: unsupported output type {type(out).__name__}; pass features_fn / logits_fn")


def invert_bn(
    model: nn.Module,
    n_images: int = 64,
    image_shape: Sequence[int] = (3, 32, 32),
    *,
    labels: Any = None,
    n_clusters: int = 8,
    steps: int = 200,
    lr: float = 0.05,
    batch_size: int | None = None,
    lambda_bn: float = 0.01,
    lambda_cluster: float = 0.1,
    margin: float = 1.0,
    lambda_ce: float = 0.0,
    lambda_tv: float = 0.0,
    lambda_l2: float = 0.0,
    squared: bool = True,
    first_layer_weight: float = 1.0,
    jitter: int = 0,
    flip: bool = False,
    normalize: Callable[[torch.Tensor], torch.Tensor] | tuple | None = None,
    init_mean: float = 0.5,
    init_std: float = 0.25,
    clamp: bool = True,
    features_fn: Callable[[Any], torch.Tensor] | None = None,
    logits_fn: Callable[[Any], torch.Tensor] | None = None,
    log_every: int = 1,
    snapshot_every: int = 0,
    n_snapshot: int = 8,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
) -> InversionResult:
    """Generate images from a frozen network's BatchNorm statistics (Eqs. 7.4, 7.5; Algorithm 2 lines 12-16).

    The images are parameterised as pixels in [0, 1] (``init_mean + init_std · N(0, 1)``, clamped after each step
    when ``clamp``) and passed through ``normalize`` (the network's input normalisation) before the network. The
    network is put in eval mode (its BN layers then use — and keep — the stored statistics) and is not changed.

    Loss per batch: ``λ_BN L_BN + λ_cluster L_cluster + λ_ce CE(logits, labels) + λ_tv TV + λ_l2 ||x − ½||²``.

    Args:
        model: the frozen teacher; its output is an ``Output`` (embedding, logits), a ``(features, logits)`` pair
            or a logits tensor (``features_fn`` / ``logits_fn`` pick other parts).
        n_images: N, images to generate in total.
        image_shape: ``(C, H, W)`` of one image.
        labels: ``(N,)`` target class / cluster of each image; default: ``n_clusters`` clusters of equal size
            inside every batch (:func:`cluster_labels`), numbered 0 … K−1 across the batch.
        n_clusters: K per batch when ``labels`` is None.
        steps: Adam steps per batch (thesis: 2000).
        lr: Adam learning rate in pixel units (thesis: 0.5 in the 0-255 BGR space ≈ 0.002 here).
        batch_size: images optimised together (their statistics are matched together); default: all N.
        lambda_bn, lambda_cluster, margin: λ_BN (0.01), λ_cluster (0.1) and Δ (1.0) of Eqs. 7.4-7.5.
        lambda_ce: weight of a cross-entropy towards ``labels`` (DeepInversion; needs a classifier; 0 = thesis).
        lambda_tv, lambda_l2: image priors (0 = thesis).
        squared: squared norms in L_BN (thesis); False: DeepInversion's plain norms.
        first_layer_weight: extra weight of the first BN layer (DeepInversion uses 10).
        jitter, flip: random shifts of up to ``jitter`` px (circular) and horizontal flips each step (DeepInversion).
        normalize: callable pixels → network input, or ``(mean, std)`` per channel; None: identity.
        init_mean, init_std: the Gaussian noise the images start from.
        clamp: keep pixels in [0, 1].
        features_fn, logits_fn: pick the embedding / logits from the model's output.
        log_every: history every this many steps (the last step always).
        snapshot_every: keep the first ``n_snapshot`` images of the first batch every this many steps (0: never).
        device: ``"auto"`` | ``"cpu"`` | ``"cuda"``.
        seed: seeds the noise and the jitter.
        progress: a tqdm bar over steps.
    Returns:
        :class:`InversionResult`.
    """
    from tqdm.auto import tqdm

    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape: expected (C, H, W), got {tuple(image_shape)}")
    N = int(n_images)
    if N < 1:
        raise ValueError(f"n_images: expected a positive int, got {n_images!r}")
    B = N if batch_size is None else int(batch_size)
    if B < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    B = min(B, N)
    if int(steps) < 0:
        raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
    if not float(lr) > 0:
        raise ValueError(f"lr: expected a learning rate > 0, got {lr!r}")
    for nm, v in (
        ("lambda_bn", lambda_bn),
        ("lambda_cluster", lambda_cluster),
        ("lambda_ce", lambda_ce),
        ("lambda_tv", lambda_tv),
        ("lambda_l2", lambda_l2),
    ):
        if not float(v) >= 0:
            raise ValueError(f"{nm}: expected a weight >= 0, got {v!r}")
    if labels is None:
        labs = []
        for start in range(0, N, B):
            n = min(B, N - start)
            k = max(1, min(int(n_clusters), n))
            labs.append(torch.arange(n) * k // n)  # k near-equal groups, contiguous
        y_all = torch.cat(labs).long()
    else:
        y_all = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
        if len(y_all) != N:
            raise ValueError(f"labels: expected {N} labels (one per image), got {len(y_all)}")
    dev = torch.device(resolve_device(device))
    if isinstance(normalize, tuple):
        m_, s_ = (torch.tensor(list(v), dtype=torch.float32, device=dev).view(1, -1, 1, 1) for v in normalize)
        norm_fn = lambda x: (x - m_) / s_  # noqa: E731
    elif normalize is None:
        norm_fn = lambda x: x  # noqa: E731
    elif callable(normalize):
        norm_fn = normalize
    else:
        raise ValueError(f"normalize: expected a callable, a (mean, std) pair or None, got {type(normalize).__name__}")

    was_training = model.training
    model.eval()
    req = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    model_dev = next(model.parameters()).device if req else dev
    model.to(dev)
    gen = torch.Generator().manual_seed(int(seed))
    out_images, history, snapshots = [], [], []
    layer_rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    stats: dict[str, list] = {}
    t0 = time.time()
    n_batches = math.ceil(N / B)
    bar = tqdm(total=n_batches * int(steps), desc="BN inversion", disable=not progress, leave=False)
    try:
        with BNStatistics(model) as bn:
            L = len(bn.layers)
            w = [float(first_layer_weight)] + [1.0] * (L - 1)
            for b in range(n_batches):
                y = y_all[b * B : (b + 1) * B].to(dev)
                n = len(y)
                z = (init_mean + init_std * torch.randn((n, *shape), generator=gen)).to(dev)
                if clamp:
                    z = z.clamp(0, 1)
                z.requires_grad_(True)
                opt = torch.optim.Adam([z], lr=float(lr))
                use_cluster = float(lambda_cluster) > 0 and len(torch.unique(y)) > 1
                for step in range(int(steps) + 1):
                    x = z
                    if jitter and step < int(steps):
                        dx, dy = (int(v) for v in torch.randint(-int(jitter), int(jitter) + 1, (2,), generator=gen))
                        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
                    if flip and step < int(steps) and bool(torch.rand((), generator=gen) < 0.5):
                        x = x.flip(3)
                    out = model(norm_fn(x))
                    emb, logits = _split_output(out)
                    if features_fn is not None:
                        emb = features_fn(out)
                    if logits_fn is not None:
                        logits = logits_fn(out)
                    terms = {
                        "bn": float(lambda_bn)
                        * bn_matching_loss(bn.means, bn.variances, bn.running_means, bn.running_variances, squared, w)
                    }
                    zero = terms["bn"].new_zeros(())
                    terms["cluster"] = (
                        float(lambda_cluster) * clustering_loss(emb.flatten(1), y, margin) if use_cluster else zero
                    )
                    terms["ce"] = float(lambda_ce) * F.cross_entropy(logits, y) if float(lambda_ce) > 0 else zero
                    terms["tv"] = float(lambda_tv) * total_variation(z) if float(lambda_tv) > 0 else zero
                    terms["l2"] = float(lambda_l2) * l2_prior(z) if float(lambda_l2) > 0 else zero
                    total = sum(terms.values())
                    last = step == int(steps)
                    if step % max(1, int(log_every)) == 0 or last:
                        g = bn.gaps()
                        history.append(
                            {
                                "step": step,
                                "batch": b,
                                **{k: float(v.detach()) for k, v in terms.items()},
                                "total": float(total.detach()),
                                "bn_mean_gap": float(g["mean"].sum()),
                                "bn_var_gap": float(g["var"].sum()),
                            }
                        )
                        if b == 0:
                            layer_rows.append((step, g["mean"], g["var"]))
                    if b == 0 and snapshot_every and (step % int(snapshot_every) == 0 or last):
                        snapshots.append((step, z.detach()[: int(n_snapshot)].clamp(0, 1).cpu().clone()))
                    if last:
                        if b == 0:
                            stats = {
                                "names": list(bn.names),
                                "mean": [m.detach().cpu().numpy() for m in bn.means],
                                "var": [v.detach().cpu().numpy() for v in bn.variances],
                                "running_mean": [m.detach().cpu().numpy() for m in bn.running_means],
                                "running_var": [v.detach().cpu().numpy() for v in bn.running_variances],
                            }
                        break
                    if not torch.isfinite(total):
                        raise FloatingPointError(
                            f"invert_bn: non-finite loss at step {step}: "
                            + ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
                        )
                    opt.zero_grad(set_to_none=True)
                    total.backward()
                    opt.step()
                    if clamp:
                        with torch.no_grad():
                            z.clamp_(0, 1)
                    bar.update(1)
                out_images.append(z.detach().clamp(0, 1).cpu())
    finally:
        bar.close()
        for p, r in zip(model.parameters(), req):
            p.requires_grad_(r)
        model.to(model_dev)
        model.train(was_training)
    seconds = time.time() - t0
    steps_arr = np.array([r[0] for r in layer_rows], dtype=int)
    gaps = (
        {"mean": np.stack([r[1] for r in layer_rows]), "var": np.stack([r[2] for r in layer_rows])}
        if layer_rows
        else {}
    )
    return InversionResult(
        torch.cat(out_images).float(), y_all.cpu(), history, gaps, steps_arr, stats, snapshots, seconds
    )


# ================================================================================================================
# quality of generated images: Inception score and Fréchet Inception Distance (thesis Table 7.5)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The Fréchet distance between the Gaussians N(μ1, Σ1) and N(μ2, Σ2) (Heusel et al. 2017, the FID):
    ``||μ1 − μ2||² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})``.

    A singular product (fewer samples than dimensions) gets ``eps`` added to both diagonals before the square root
    (as the reference implementation does); the imaginary part of the root's numerical noise is dropped.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(
            f"mu1, sigma1, mu2, sigma2: expected (d,), (d, d), (d,), (d, d); got {mu1.shape}, {s1.shape}, "
            f"{mu2.shape}, {s2.shape}"
        )
    with warnings.catch_warnings():  # a singular product: the eps offset below, as the reference code
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            off = np.eye(len(mu1)) * eps
            covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean), 0.0))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, covariance)`` of ``(N, d)`` features (the unbiased covariance, as the FID's reference code)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features: expected (N, d) with N ≥ 2, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def fid(features_a, features_b) -> float:
    """Fréchet Inception Distance of two feature sets ``(N, d)`` / ``(M, d)`` (:func:`frechet_distance` of their
    means and covariances); 0 for identical sets.

    With fewer images than dimensions in a set (e.g. 128 generated images, 2048-d Inception-v3 features) the
    covariance product is singular: ``Tr (Σ_a Σ_b)^{1/2}`` is then computed exactly in sample space, as the nuclear
    norm of ``A_cᵀ B_c / sqrt((N − 1)(M − 1))`` (``A_c``, ``B_c``: the centred features; the non-zero eigenvalues of
    ``Σ_a Σ_b`` are the squared singular values of that ``N × M`` matrix) — no ``eps`` offset, and no ``d × d``
    matrix square root (seconds for d = 2048)."""
    mu_a, s_a = feature_statistics(features_a)
    mu_b, s_b = feature_statistics(features_b)
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_a, features_b: expected the same dimension, got {a.shape[1]} and {b.shape[1]}")
    if min(len(a), len(b)) > a.shape[1]:
        return frechet_distance(mu_a, s_a, mu_b, s_b)
    cross = (a - mu_a) @ (b - mu_b).T / np.sqrt((len(a) - 1) * (len(b) - 1))
    tr_sqrt = float(np.linalg.svd(cross, compute_uv=False).sum())
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * tr_sqrt, 0.0))


def inception_score(probs, splits: int = 1) -> tuple[float, float]:
    """Inception score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) ‖ p(y)))`` of ``(N, classes)`` class
    probabilities, the mean and std over ``splits`` equal parts (the reference code uses 10).

    It lies in [1, classes]: 1 when every image gets the same distribution, ``classes`` when each image is
    classified with certainty and the classes are used equally.
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or len(p) < splits or splits < 1:
        raise ValueError(f"probs: expected (N, classes) with N ≥ splits = {splits}, got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-4):
        raise ValueError("probs: expected rows of probabilities (non-negative, summing to 1)")
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0, keepdims=True)
        kl = np.where(part > 0, part * (np.log(np.clip(part, 1e-30, None)) - np.log(np.clip(py, 1e-30, None))), 0.0)
        scores.append(float(np.exp(kl.sum(1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


@torch.no_grad()
def inception_outputs(
    trunk: nn.Module, images, batch_size: int = 64, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(pooled features (N, C), class probabilities (N, classes))`` of images by a classification trunk (an
    :class:`xmr_lib.encoders.backbones.FeatureTrunk` with a linear ``head``: ``backbone("inception_v3")``, the
    scorer of both measures — 2048-d pool features, 1000 ImageNet classes at 299 px —, or ``backbone("googlenet")``).

    ``images``: ``(N, 3, H, W)`` uint8 (0–255) or float in [0, 1]; resized to ``size`` (default
    ``trunk.input_size``; bilinear) and normalised with the trunk's mean / std. Features: the global average of the
    last maps (the FID's pool layer); probabilities: the softmax of ``trunk.logits`` (the Inception score's p(y|x)).
    """
    x_all = torch.as_tensor(images)
    if x_all.ndim != 4 or x_all.shape[1] != 3:
        raise ValueError(f"images: expected (N, 3, H, W), got shape {tuple(x_all.shape)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise ValueError(f"size: expected None or an int >= 1, got {size!r}")
    dev = next(trunk.parameters()).device
    mean = torch.tensor(trunk.mean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(trunk.std, device=dev).view(1, 3, 1, 1)
    feats, probs = [], []
    trunk.eval()
    for i in range(0, len(x_all), batch_size):
        x = x_all[i : i + batch_size].to(dev)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        size_ = int(size) if size is not None else int(getattr(trunk, "input_size", 224))
        if tuple(x.shape[-2:]) != (size_, size_):
            x = F.interpolate(x, size=(size_, size_), mode="bilinear", align_corners=False)
        maps = trunk((x - mean) / std)
        feats.append(maps.mean(dim=(2, 3)).double().cpu())
        probs.append(torch.softmax(trunk.logits(maps).double(), dim=1).cpu())
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()
