"""Global descriptors from CNN feature maps: MAC, SPoC, average pooling, GeM, R-MAC, CroW, multi-scale.

Every pooling function takes a batch of feature maps ``x`` of shape ``(N, C, H, W)`` (the last conv layer after its
non-linearity, so usually non-negative) and returns ``(N, C)`` descriptors, L2-normalised unless
``normalize=False``. Retrieval then ranks a database by the inner product (cosine) with the query.

=================  ==============================================================================================
``mac_pool``       max over positions, Tolias et al. 2016 (thesis [31]; the name MAC, Razavian et al. [63])
``spoc_pool``      sum pooling with the Gaussian centre prior of Babenko & Lempitsky 2015 (thesis [25])
``avg_pool``       plain average pooling — what cirtorch and most tables call "SPoC" (no centre prior)
``gem_pool``       generalised mean, p fixed or learnable, shared or per channel (Radenović et al. [57])
``rmac_pool``      regional MAC on Tolias et al.'s multi-scale square grid (:func:`rmac_regions`), vectorised
``crow_pool``      CroW spatial × channel weighting (Kalantidis et al. 2016, thesis [26])
=================  ==============================================================================================

The thesis (chapter 2, its survey of pooling methods and the caption of Fig. 2.6) names these methods without
formulas; the formulas come from the original papers (MAC and R-MAC: Tolias et al., ICLR 2016; SPoC: Babenko and
Lempitsky, ICCV 2015; CroW: Kalantidis et al., ECCV workshops 2016; GeM: Radenović et al., TPAMI 2019). :class:`GeM`, :class:`MAC`,
... wrap the functions as ``nn.Module`` s, :func:`get_pooling` builds one by name, and :func:`extract_multiscale`
/ :func:`combine_scales` build multi-scale descriptors (cirtorch's ``extract_ms``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core.setup import resolve_device

__all__ = [
    "l2_normalize",
    "mac_pool",
    "avg_pool",
    "spoc_pool",
    "spoc_center_prior",
    "gem_pool",
    "rmac_regions",
    "regional_max",
    "rmac_pool",
    "crow_spatial_weight",
    "crow_channel_weight",
    "crow_pool",
    "combine_scales",
    "extract_multiscale",
    "MAC",
    "AvgPool",
    "SPoC",
    "GeM",
    "RMAC",
    "CroW",
    "POOLINGS",
    "get_pooling",
    "pool",
    "pooling_names",
]

EPS = 1e-6


# ---------------------------------------------------------------------------------------------------------------
# checks and normalisation


def _check_maps(x, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected feature maps of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if min(x.shape[2:]) < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: feature maps must have C, H, W >= 1, got shape {tuple(x.shape)}")
    return x


def l2_normalize(v: torch.Tensor, dim: int = -1, eps: float = EPS) -> torch.Tensor:
    """``v / (||v||_2 + eps)`` along ``dim`` (cirtorch's ``l2n``; ``eps`` keeps all-zero vectors finite)."""
    return v / (torch.linalg.vector_norm(v, dim=dim, keepdim=True) + eps)


def _finish(v: torch.Tensor, normalize: bool) -> torch.Tensor:
    return l2_normalize(v) if normalize else v


# ---------------------------------------------------------------------------------------------------------------
# MAC, average pooling, SPoC, GeM


def mac_pool(x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """MAC: ``f_k = max_{i,j} x[k, i, j]`` — maximum activation of each channel.

    Args:
        x: ``(N, C, H, W)`` feature maps.
        normalize: L2-normalise the ``(N, C)`` result.
    """
    return _finish(_check_maps(x).amax(dim=(2, 3)), normalize)


def avg_pool(x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Average pooling ``f_k = mean_{i,j} x[k, i, j]`` — cirtorch's ``spoc`` (no centre prior).

    After L2 normalisation it equals sum pooling. ``(N, C, H, W) → (N, C)``.
    """
    return _finish(_check_maps(x).mean(dim=(2, 3)), normalize)


def spoc_center_prior(
    height: int, width: int, sigma_frac: float = 1.0 / 3.0, dtype=torch.float32, device=None
) -> torch.Tensor:
    """Babenko & Lempitsky's Gaussian centre prior, shape ``(height, width)``.

    ``α(i, j) = exp(-((i - c_i)² + (j - c_j)²) / (2σ²))`` with centre ``c = ((H-1)/2, (W-1)/2)`` (the middle of
    the map in pixel-centre coordinates) and ``σ = sigma_frac · min(H, W) / 2`` — one third of the distance from
    the centre to the nearest border for the paper's ``sigma_frac = 1/3``. The maximum (at the centre) is 1 for
    odd sizes.
    """
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"height, width: expected positive map sizes, got ({height}, {width})")
    if not sigma_frac > 0:
        raise ValueError(f"sigma_frac: expected a positive number, got {sigma_frac!r}")
    sigma = sigma_frac * min(height, width) / 2.0
    i = torch.arange(height, dtype=torch.float64, device=device) - (height - 1) / 2.0
    j = torch.arange(width, dtype=torch.float64, device=device) - (width - 1) / 2.0
    d2 = i[:, None] ** 2 + j[None, :] ** 2
    return torch.exp(-d2 / (2.0 * sigma * sigma)).to(dtype)


def spoc_pool(
    x: torch.Tensor, center_prior: bool = True, sigma_frac: float = 1.0 / 3.0, normalize: bool = True
) -> torch.Tensor:
    """SPoC: ``f_k = Σ_{i,j} α(i, j) x[k, i, j]`` with the Gaussian centre prior α (:func:`spoc_center_prior`).

    ``center_prior=False`` gives plain sum pooling, which after L2 normalisation equals :func:`avg_pool` (what
    cirtorch calls SPoC). ``(N, C, H, W) → (N, C)``.
    """
    x = _check_maps(x)
    if not center_prior:
        return _finish(x.sum(dim=(2, 3)), normalize)
    a = spoc_center_prior(x.shape[2], x.shape[3], sigma_frac, dtype=x.dtype, device=x.device)
    return _finish(torch.einsum("nchw,hw->nc", x, a), normalize)


def gem_pool(x: torch.Tensor, p: float | torch.Tensor = 3.0, eps: float = EPS, normalize: bool = True) -> torch.Tensor:
    """Generalised mean: ``f_k = (mean_{i,j} max(x, eps)^{p_k})^{1/p_k}``.

    ``p = 1`` is average pooling, ``p → ∞`` tends to MAC (``p = inf`` returns MAC exactly). The clamp at ``eps``
    keeps the power differentiable and defined for non-integer ``p`` (inputs are meant to be post-ReLU). Computed
    relative to the channel maximum, so large ``p`` does not overflow.

    Args:
        x: ``(N, C, H, W)`` feature maps.
        p: a number, a 0-d / 1-element tensor (shared p, possibly an ``nn.Parameter``) or a ``(C,)`` tensor (one p
            per channel, cirtorch's GeMmp). Every p must be > 0 (``p = 0`` would silently give MAC, a negative p a
            harmonic-like mean of the weakest activations): a ``ValueError`` names the offending value.
        eps: lower clamp of the activations.
    """
    x = _check_maps(x)
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps: the lower clamp of the activations must be > 0, got {eps!r}")
    if not isinstance(p, torch.Tensor):
        p = float(p)
        if math.isinf(p) and p > 0:
            return mac_pool(x, normalize)
        if not p > 0:
            raise ValueError(f"p: expected p > 0, got {p!r}")
        return _finish(_stable_gem(x.clamp(min=eps), p), normalize)  # clamp makes a copy: x is never modified
    if p.numel() == 1:
        pv = p.reshape(1, 1)
    elif p.ndim == 1 and p.shape[0] == x.shape[1]:
        pv = p.reshape(1, -1)
    else:
        raise ValueError(
            f"p: expected a number, a 1-element tensor or a ({x.shape[1]},) tensor (one per channel), "
            f"got shape {tuple(p.shape)}"
        )
    _check_positive_p(p)
    return _finish(_stable_gem(x.clamp(min=eps), pv.to(x.dtype)), normalize)


def _check_positive_p(p: torch.Tensor) -> None:
    """Every entry of a tensor ``p`` is > 0 (``+inf`` allowed: MAC); NaN, 0 and negative values raise."""
    pd = p.detach()
    if not pd.is_floating_point():
        pd = pd.double()
    bad = ~(pd > 0)  # NaN compares False
    if bool(bad.any()):  # one device sync per call (a scalar read)
        i = int(bad.reshape(-1).nonzero()[0, 0])
        where = "" if pd.numel() == 1 else f" (channel {i})"
        raise ValueError(
            f"p: expected p > 0, got {pd.reshape(-1)[i].item()!r}{where}; p = 0 would give MAC and "
            "p < 0 a mean dominated by the weakest activations"
        )


def _stable_gem(x: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
    """``(mean x^p)^{1/p}`` computed as ``m · (mean (x/m)^p)^{1/p}`` with ``m`` the per-channel max, so that large
    p (a sweep towards MAC) does not overflow float32; ``p`` is a float or a ``(1, C)`` / ``(1, 1)`` tensor."""
    m = x.amax(dim=(2, 3), keepdim=True)
    pe = p if not isinstance(p, torch.Tensor) else p[..., None, None]
    if torch.is_grad_enabled() and (x.requires_grad or (isinstance(p, torch.Tensor) and p.requires_grad)):
        r = (x / m).pow(pe)
    else:  # inference: one full-size temporary instead of three (large allocations dominate on the CPU)
        r = (x / m).pow_(pe)
    return m[..., 0, 0] * r.mean(dim=(2, 3)).pow(1.0 / p)


# ---------------------------------------------------------------------------------------------------------------
# R-MAC


def rmac_regions(height: int, width: int, levels: int = 3, overlap: float = 0.4) -> np.ndarray:
    """Tolias et al.'s R-MAC region grid: ``(R, 4)`` int array of ``(top, left, height, width)``.

    At level ``l = 1..levels`` the regions are squares of side ``floor(2·min(H, W) / (l + 1))``, ``l`` per short
    side and ``l + extra`` per long side, where ``extra`` (0 for square maps) is the count whose full-size
    squares overlap closest to ``overlap`` (40 %). Start positions are ``floor(i·(L - side) / (n - 1))`` along
    each axis — the MATLAB ``rmac_regionvec_act.m`` / cirtorch ``rmac`` grid, with the ``wl2`` offset of those
    codes cancelled exactly (integer arithmetic instead of floats). Regions are ordered by level, then row,
    then column. Example: a 24×32 map gives 2 + 6 + 12 = 20 regions.
    """
    H, W, levels = int(height), int(width), int(levels)
    if H < 1 or W < 1:
        raise ValueError(f"height, width: expected positive map sizes, got ({height}, {width})")
    if levels < 1:
        raise ValueError(f"levels: expected an int >= 1, got {levels!r}")
    w = min(H, W)
    steps = np.arange(2, 8, dtype=np.float64)
    b = (max(H, W) - w) / (steps - 1)
    idx = int(np.argmin(np.abs((w * w - w * b) / (w * w) - overlap)))  # 0-based, as in cirtorch
    wd = idx + 1 if W > H else 0
    hd = idx + 1 if H > W else 0
    out = []
    for lev in range(1, levels + 1):
        side = (2 * w) // (lev + 1)
        if side < 1:
            raise ValueError(
                f"levels: a {H}×{W} map is too small for {levels} R-MAC levels "
                f"(level {lev} would use regions of side {side}); use fewer levels"
            )
        nw, nh = lev + wd, lev + hd
        lefts = [(i * (W - side)) // (nw - 1) if nw > 1 else 0 for i in range(nw)]
        tops = [(i * (H - side)) // (nh - 1) if nh > 1 else 0 for i in range(nh)]
        out.extend((t, le, side, side) for t in tops for le in lefts)
    return np.asarray(out, dtype=np.int64).reshape(-1, 4)


def _region_plan(height: int, width: int, r: np.ndarray):
    """How :func:`regional_max` covers each region with ``2^k × 2^k`` blocks (see there)."""
    full = (r[:, 2] == height) & (r[:, 3] == width)
    part = r[~full]
    k = int(min(part[:, 2].min(), part[:, 3].min())).bit_length() - 1 if len(part) else 0
    s = 1 << k
    nh, nw = -(-r[:, 2] // s), -(-r[:, 3] // s)  # blocks per side, ceil(side / 2^k)
    groups = []
    for a, b in sorted(set(zip(nh[~full].tolist(), nw[~full].tolist()))):
        sel = np.nonzero(~full & (nh == a) & (nw == b))[0]
        top, left, h, w = r[sel].T
        # block origins along each axis: s·i for the first n-1 blocks, side - s for the last (it may overlap)
        ph = np.minimum(np.arange(a)[:, None] * s, (h - s)[None, :]) + top[None, :]  # (a, G)
        pw = np.minimum(np.arange(b)[:, None] * s, (w - s)[None, :]) + left[None, :]  # (b, G)
        flat = (ph[:, None, :] * width + pw[None, :, :]).reshape(a * b, len(sel))  # (a·b, G)
        groups.append((sel, flat))
    return k, np.nonzero(full)[0], groups


def regional_max(
    x: torch.Tensor, regions: np.ndarray | Sequence[Sequence[int]], chunk_elements: int = 1 << 20
) -> torch.Tensor:
    """Max-pool every region of every map at once: ``(N, C, H, W)``, ``(R, 4)`` → ``(N, R, C)``.

    ``regions`` rows are ``(top, left, height, width)``. No Python loop over regions: each map is flattened to
    ``H·W`` values and a 2-D sparse table is built with ``2k`` element-wise maxima of shifted copies,
    ``T[p] = max x[p_i : p_i + 2^k, p_j : p_j + 2^k]`` with ``2^k`` the largest power of two that fits in the
    smallest region. A region is then the max of the ``ceil(h/2^k)·ceil(w/2^k)`` overlapping blocks that cover
    it, read from ``T`` with one gather per group of same-shaped regions; a region covering the whole map is a
    plain max. On the CPU the ``N·C`` maps are processed in chunks of about ``chunk_elements`` values so that
    the table stays in cache. Differentiable (the gradient goes to the arg-max entries).
    """
    x = _check_maps(x)
    r = np.asarray(regions, dtype=np.int64).reshape(-1, 4)
    N, C, H, W = x.shape
    if len(r) == 0:
        raise ValueError("regions: expected at least one region, got none")
    if (
        (r[:, 2] < 1).any()
        or (r[:, 3] < 1).any()
        or (r[:, :2] < 0).any()
        or (r[:, 0] + r[:, 2] > H).any()
        or (r[:, 1] + r[:, 3] > W).any()
    ):
        raise ValueError(f"regions: every (top, left, height, width) must lie inside the {H}×{W} map; got {r.tolist()}")
    k, full, groups = _region_plan(H, W, r)
    dev = x.device
    order = np.concatenate([full] + [sel for sel, _ in groups])
    inverse = torch.as_tensor(np.argsort(order), device=dev)
    sizes = [(f.shape[0], f.shape[1]) for _, f in groups]  # (blocks per region n, regions G)
    gather = torch.as_tensor(
        np.concatenate([f.reshape(-1) for _, f in groups]) if groups else np.zeros(0, np.int64), device=dev
    )
    flat = x.reshape(N * C, H * W)
    step = N * C if x.is_cuda else max(1, int(chunk_elements) // (H * W))
    outs = []
    for i in range(0, N * C, step):  # chunks of maps, not regions
        c = flat[i : i + step]
        parts = [c.amax(dim=1, keepdim=True).expand(-1, len(full))] if len(full) else []
        if groups:
            t = c
            for j in range(k):
                s = 1 << j
                m = t.shape[1] - s
                t = torch.maximum(t[:, :m], t[:, s : s + m])  # widen the blocks along W
                m = t.shape[1] - s * W
                t = torch.maximum(t[:, :m], t[:, s * W : s * W + m])  # ... and along H
            v = t.index_select(1, gather)  # every covering block of every region
            o = 0
            for n, g in sizes:  # (M, n, G) → max over the n covering blocks
                parts.append(v[:, o : o + n * g].view(-1, n, g).amax(dim=1))
                o += n * g
        outs.append(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
    out = torch.cat(outs).index_select(1, inverse)  # (N·C, R) in the given region order
    return out.view(N, C, len(r)).transpose(1, 2)


def rmac_pool(
    x: torch.Tensor,
    levels: int = 3,
    include_global: bool = False,
    region_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """R-MAC: ``f = Σ_r L2(T(L2(MAC_r(x))))`` over the regions of :func:`rmac_regions`, then L2.

    Args:
        x: ``(N, C, H, W)`` feature maps.
        levels: grid levels (3 in [31]); on maps too small for them (short side < (levels + 1) / 2) only the
            levels that fit are used.
        include_global: also add the MAC of the whole map (cirtorch's variant; Tolias et al. do not).
        region_transform: optional map ``(M, C) → (M, D)`` applied to the L2-normalised regional vectors before
            the second L2 and the sum — e.g. a PCA-whitening learned on regional vectors of another dataset, as in
            the original R-MAC. ``None`` = identity (the second L2 is then a no-op).
    Returns:
        ``(N, D)`` descriptors (``D = C`` without a transform).
    """
    x = _check_maps(x)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"levels: expected an int >= 1, got {levels!r}")
    # a map of short side w has regions at levels l ≤ 2w − 1 only; tiny maps keep the levels that fit
    reg = rmac_regions(x.shape[2], x.shape[3], min(int(levels), 2 * min(x.shape[2], x.shape[3]) - 1))
    if include_global:
        reg = np.vstack([[0, 0, x.shape[2], x.shape[3]], reg])
    v = l2_normalize(regional_max(x, reg))  # (N, R, C)
    if region_transform is not None:
        N, R, C = v.shape
        v = l2_normalize(region_transform(v.reshape(N * R, C)).reshape(N, R, -1))
    return _finish(v.sum(dim=1), normalize)


# ---------------------------------------------------------------------------------------------------------------
# CroW


def _check_crow_ab(a, b) -> tuple[float, float]:
    """CroW's norm order ``a`` and power ``b``: numbers > 0 (``inf`` allowed); 0, negative or NaN raise."""
    out = []
    for name, v in (("a", a), ("b", b)):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number > 0, got {v!r}") from None
        if not f > 0:
            raise ValueError(f"{name}: expected a number > 0 (CroW uses a = b = 2), got {v!r}")
        out.append(f)
    return out[0], out[1]


def crow_spatial_weight(x: torch.Tensor, a: float = 2.0, b: float = 2.0) -> torch.Tensor:
    """CroW spatial weights ``S = (S' / ||S'||_a)^{1/b}`` with ``S' = Σ_k x_k``: ``(N, C, H, W) → (N, H, W)``.
    ``a`` and ``b`` must be > 0 (``ValueError`` otherwise)."""
    x = _check_maps(x)
    _check_crow_ab(a, b)
    s = x.sum(dim=1)
    z = torch.linalg.vector_norm(s.flatten(1), ord=a, dim=1).clamp(min=EPS)
    return (s / z[:, None, None]).clamp(min=0).pow(1.0 / b)


def crow_channel_weight(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """CroW channel weights ``C_k = log(Σ_j Q_j / Q_k)``, ``Q_k`` = fraction of non-zero entries of channel k.

    Channels that are never active (``Q_k = 0``) get weight 0, as in the reference code. ``(N, C, H, W) → (N, C)``.
    """
    x = _check_maps(x)
    q = (x != 0).to(x.dtype).mean(dim=(2, 3))  # (N, C)
    total = q.sum(dim=1, keepdim=True)
    w = torch.log(total.clamp(min=eps) / q.clamp(min=eps))
    return torch.where(q > 0, w, torch.zeros_like(w))


def crow_pool(x: torch.Tensor, a: float = 2.0, b: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """CroW: ``f_k = C_k Σ_{i,j} S_{ij} x[k, i, j]`` (:func:`crow_spatial_weight`, :func:`crow_channel_weight`)."""
    s = crow_spatial_weight(x, a, b)
    c = crow_channel_weight(x)
    return _finish(c * torch.einsum("nchw,nhw->nc", x, s), normalize)


# ---------------------------------------------------------------------------------------------------------------
# multi-scale


def combine_scales(
    descriptors: torch.Tensor | Sequence[torch.Tensor], power: float | torch.Tensor = 1.0, normalize: bool = True
) -> torch.Tensor:
    """Multi-scale descriptor ``L2((mean_s f_s^power)^{1/power})`` (cirtorch ``extract_ms`` with ``msp = power``).

    Args:
        descriptors: ``(S, N, D)`` tensor or a list of S ``(N, D)`` tensors — one (L2-normalised) descriptor per
            scale. Values are clamped at ``EPS`` before the power when ``power != 1``.
        power: 1 = average over scales; cirtorch uses the learned GeM ``p`` for GeM networks.
    """
    d = torch.stack(list(descriptors)) if not isinstance(descriptors, torch.Tensor) else descriptors
    if d.ndim != 3:
        raise ValueError(f"descriptors: expected shape (S, N, D) (or a list of (N, D)), got shape {tuple(d.shape)}")
    pw = power.detach() if isinstance(power, torch.Tensor) else torch.tensor(float(power))
    if pw.numel() != 1 or not float(pw) > 0:
        raise ValueError(f"power: expected one positive number, got {power!r}")
    pw = float(pw)
    y = d.mean(0) if pw == 1.0 else d.clamp(min=EPS).pow(pw).mean(0).pow(1.0 / pw)
    return _finish(y, normalize)


@torch.no_grad()
def extract_multiscale(
    trunk: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    pool_fn: Callable[[torch.Tensor], torch.Tensor],
    scales: Sequence[float] = (1.0, 2**-0.5, 0.5),
    power: float = 1.0,
    batch_size: int = 32,
    device: str = "auto",
    progress: bool = False,
) -> torch.Tensor:
    """Multi-scale global descriptors: for each scale s, resize the batch bilinearly by s, run ``trunk``, pool; then
    :func:`combine_scales`. Batched over images (one trunk call per batch and scale), on the GPU when present.

    Args:
        trunk: ``(B, 3, h, w) → (B, C, h', w')`` feature-map extractor (an ``nn.Module`` or a function).
        images: ``(N, 3, H, W)`` float tensor, already normalised for the trunk.
        pool_fn: ``(B, C, h', w') → (B, D)`` L2-normalised descriptors (e.g. ``GeM()`` or ``mac_pool``).
        scales: resize factors (cirtorch's test default ``[1, 1/√2, 1/2]``).
        power: generalised-mean power across scales (cirtorch: the GeM p).
    Returns:
        ``(N, D)`` float32 descriptors on the CPU.
    """

    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            f"images: expected a (N, 3, H, W) tensor, got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}"
        )
    if len(scales) == 0 or any(not s > 0 for s in scales):
        raise ValueError(f"scales: expected positive resize factors, got {list(scales)!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    dev = torch.device(resolve_device(device))
    if isinstance(trunk, nn.Module):
        trunk = trunk.to(dev).eval()
    if isinstance(pool_fn, nn.Module):
        pool_fn = pool_fn.to(dev).eval()
    starts = range(0, len(images), int(batch_size))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="multi-scale extraction", leave=False)
    out = []
    for i in starts:
        batch = images[i : i + batch_size].to(dev, torch.float32)
        per_scale = []
        for s in scales:
            b = batch if s == 1 else F.interpolate(batch, scale_factor=float(s), mode="bilinear", align_corners=False)
            per_scale.append(pool_fn(trunk(b)))
        out.append(combine_scales(torch.stack(per_scale), power).float().cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------------------
# modules and registry


class MAC(nn.Module):
    """:func:`mac_pool` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mac_pool(x)


class AvgPool(nn.Module):
    """:func:`avg_pool` as a module (cirtorch's ``SPoC``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool(x)


class SPoC(nn.Module):
    """:func:`spoc_pool` with the Gaussian centre prior (``center_prior=False``: sum pooling)."""

    def __init__(self, center_prior: bool = True, sigma_frac: float = 1.0 / 3.0):
        super().__init__()
        self.center_prior, self.sigma_frac = bool(center_prior), float(sigma_frac)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spoc_pool(x, self.center_prior, self.sigma_frac)

    def extra_repr(self) -> str:
        return f"center_prior={self.center_prior}, sigma_frac={self.sigma_frac:.3g}"


class GeM(nn.Module):
    """Generalised-mean pooling with a fixed or learnable ``p`` (:func:`gem_pool`).

    Args:
        p: initial value of p (3 in [57]).
        learnable: make ``p`` an ``nn.Parameter`` (train it with a larger lr and no weight decay, as cirtorch does:
            see :func:`xmr_lib.train.finetune.parameter_groups`).
        channels: ``None`` for one shared p, or C for one p per channel (cirtorch's GeMmp).
        eps: activation clamp.
    """

    def __init__(self, p: float = 3.0, learnable: bool = True, channels: int | None = None, eps: float = EPS):
        super().__init__()
        if not float(p) > 0 or math.isinf(float(p)):
            raise ValueError(f"p: expected a finite p > 0, got {p!r}")
        if channels is not None and int(channels) < 1:
            raise ValueError(f"channels: expected None or a positive int, got {channels!r}")
        value = torch.full((1 if channels is None else int(channels),), float(p))
        if learnable:
            self.p = nn.Parameter(value)
        else:
            self.register_buffer("p", value)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem_pool(x, self.p, self.eps)

    def extra_repr(self) -> str:
        p = self.p.detach()
        ps = f"{p.item():.4g}" if p.numel() == 1 else f"[{p.numel()} values, mean {p.mean().item():.4g}]"
        return f"p={ps}, learnable={isinstance(self.p, nn.Parameter)}, eps={self.eps:g}"


class RMAC(nn.Module):
    """:func:`rmac_pool` as a module."""

    def __init__(self, levels: int = 3, include_global: bool = False):
        super().__init__()
        self.levels, self.include_global = int(levels), bool(include_global)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rmac_pool(x, self.levels, self.include_global)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, include_global={self.include_global}"


class CroW(nn.Module):
    """:func:`crow_pool` as a module."""

    def __init__(self, a: float = 2.0, b: float = 2.0):
        super().__init__()
        self.a, self.b = _check_crow_ab(a, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return crow_pool(x, self.a, self.b)

    def extra_repr(self) -> str:
        return f"a={self.a:g}, b={self.b:g}"


# name → (module class, default kwargs, one-line description)
POOLINGS: dict[str, tuple[type[nn.Module], dict, str]] = {
    "mac": (MAC, {}, "max over positions (MAC)"),
    "avg": (AvgPool, {}, "average pooling (cirtorch 'SPoC')"),
    "spoc": (SPoC, {"center_prior": True}, "sum pooling with a Gaussian centre prior (SPoC, Babenko & Lempitsky)"),
    "gem": (GeM, {"p": 3.0, "learnable": False}, "generalised mean, p = 3 (GeM)"),
    "rmac": (RMAC, {"levels": 3}, "regional MAC on a 3-level grid (R-MAC)"),
    "crow": (CroW, {"a": 2.0, "b": 2.0}, "cross-dimensional weighting (CroW)"),
}


def pooling_names() -> list[str]:
    """The registered pooling names, in table order."""
    return list(POOLINGS)


def get_pooling(name: str, **kwargs) -> nn.Module:
    """A pooling module by name (``"mac"``, ``"avg"``, ``"spoc"``, ``"gem"``, ``"rmac"``, ``"crow"``).

    ``kwargs`` override the defaults, e.g. ``get_pooling("gem", p=4.0, learnable=True)``.
    """
    if name not in POOLINGS:
        raise ValueError(f"name: unknown pooling {name!r}; known: {', '.join(POOLINGS)}")
    cls, defaults, _ = POOLINGS[name]
    return cls(**{**defaults, **kwargs})


def pool(name: str, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """Pool ``(N, C, H, W)`` maps into ``(N, C)`` L2-normalised descriptors with the named pooling."""
    with torch.no_grad():
        return get_pooling(name, **kwargs)(x)
