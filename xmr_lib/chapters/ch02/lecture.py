"""The steps notebook 02 calls: benchmarks, the split trunk and its cached maps, the revisited evaluation of
descriptor pipelines (whitening, query expansion, DBA), multi-scale descriptors, fine-tuning of the pooling heads,
and the full profile's checks of published descriptors and networks.

Descriptors are kept as ``desc[(dataset, seed, pooling)] = {"db": (N, D), "queries": (Q, D), "train": (T, D)}``
float32 arrays, L2-normalised, so that ``queries @ db.T`` is the cosine. mAPs are in percent, with the official
revisited protocol (Easy / Medium / Hard) of :func:`xmr_lib.retrieval.metrics.revisited_map`.

Records stay in the notebook (``xmr_lib.course`` sits above the chapters): the functions here return the numbers,
the images and the metric names, draw the fine-tuning curves, and make the explorer's ``draw`` callable
(:func:`ranked_view`, given ``viz.ranked_grids`` by the notebook).
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from xmr_lib import data
from xmr_lib.core import checkpoint, paths
from xmr_lib.core.setup import resolve_device
from xmr_lib.data import sfm120k
from xmr_lib.encoders import backbones, extract
from xmr_lib.retrieval import expansion, metrics, mining, pooling, whitening
from xmr_lib.train import distributed, finetune, loop

PROTOCOLS = ("easy", "medium", "hard")
PARTS = ("db", "queries", "train")


# ---------------------------------------------------------------------------------------------------------------
# benchmarks


def load_benchmark(ds: str, seed: int, p: Any) -> data.RetrievalBenchmark:
    """One test benchmark: the generated photo_instances at ``seed`` (``p.n_instances``, ``p.image_size``), or a
    real revisited one read from ``p.data_root`` (a ValueError naming the fetch command when there is none)."""
    if ds == "photo_instances":
        return data.photo_instances(seed=seed, n_instances=p.n_instances, image_size=p.image_size)
    if not p.data_root:
        raise ValueError(
            f"data_root: the {ds} benchmark is read from disk; fetch it with "
            f"`python -m data_scripts fetch {ds} --root DIR` and pass data_root=DIR"
        )
    return data.revisited(ds, p.data_root)


def load_benchmarks(p: Any, seeds: Sequence[int]) -> dict:
    """``{(dataset, seed): benchmark}`` for every dataset of ``p.datasets``: photo_instances once per seed (each
    seed generates another benchmark), a real benchmark once (first seed)."""
    return {
        (ds, s): load_benchmark(ds, s, p)
        for ds in p.datasets
        for s in (seeds if ds == "photo_instances" else seeds[:1])
    }


def benchmark_table(bench: Mapping) -> pd.DataFrame:
    """One row per benchmark: database, queries, train images and the mean easy / hard / junk counts per query."""
    return pd.DataFrame(
        [
            {
                "dataset": ds,
                "seed": s,
                "database": len(b.db),
                "queries": len(b.queries),
                "train (whitening, fine-tuning)": len(b.train),
                "easy / hard / junk per query": "{:.1f} / {:.1f} / {:.1f}".format(
                    *[np.mean([len(g[k]) for g in b.gnd]) for k in ("easy", "hard", "junk")]
                ),
            }
            for (ds, s), b in bench.items()
        ]
    )


def query_truth(b: Any, qi: int, n: int = 3) -> dict:
    """Query ``qi`` with up to ``n`` easy and ``n`` hard positives and 2 junk images, as the keyword arguments of
    :func:`xmr_lib.course.viz.ranked_grid` (``query, results, status, titles, query_title``)."""
    g = b.gnd[qi]
    imgs = [b.db[j] for j in list(g["easy"][:n]) + list(g["hard"][:n]) + list(g["junk"][:2])]
    ne, nh, nj = min(n, len(g["easy"])), min(n, len(g["hard"])), min(2, len(g["junk"]))
    return dict(
        query=b.queries[qi],
        results=imgs,
        status=["relevant"] * (ne + nh) + ["junk"] * nj,
        titles=["easy"] * ne + ["hard"] * nh + ["junk"] * nj,
        query_title=f"query {qi}",
    )


def chance_levels(bench: Mapping, ds: str, seeds: Sequence[int]) -> dict[str, float]:
    """Expected fraction of positives in a random ranking, per protocol (mean over queries and seeds), in [0, 1]."""
    return {
        k: float(
            np.mean(
                [
                    np.mean(
                        [len(np.concatenate([g[x] for x in pos])) / len(bench[(ds, s)].db) for g in bench[(ds, s)].gnd]
                    )
                    for s in seeds
                ]
            )
        )
        for k, pos in {"easy": ["easy"], "medium": ["easy", "hard"], "hard": ["hard"]}.items()
    }


# ---------------------------------------------------------------------------------------------------------------
# the trunk and its maps


def trunk_of(name: str, p: Any) -> backbones.FeatureTrunk:
    """The trunk ``name`` (:func:`xmr_lib.encoders.backbones.backbone`): ImageNet weights found on disk (a
    FileNotFoundError names ``python -m data_scripts fetch NAME`` when they are absent), randomly initialised
    when ``p.tiny``."""
    return backbones.backbone(name, pretrained=not p.get("tiny", False), device=p.device)


def extractor(p: Any, name: str | None = None) -> tuple[nn.Module, extract.MapExtractor]:
    """The trunk ``name`` (default ``p.backbone``) split into a frozen lower part and its top ``p.ft_blocks`` blocks
    (EfficientNet-Lite0: MBConv blocks + head convolution; a torchvision trunk: the last layers of its ``features``):
    ``(trunk, MapExtractor)`` at ``p.image_size`` on ``p.device``. A random trunk (``tiny``) has its own cache key."""
    name = name or p.get("backbone", "efficientnet_lite0")
    trunk = trunk_of(name, p)
    lower, upper = finetune.split_trunk(trunk, p.ft_blocks)
    return trunk, extract.MapExtractor(
        lower,
        upper,
        model=name + ("-random" if p.get("tiny", False) else ""),
        lower_blocks=len(lower.blocks) if hasattr(lower, "blocks") else len(lower),
        mean=trunk.mean,
        std=trunk.std,
        image_size=p.image_size,
        device=p.device,
    )


def lower_maps(ex: extract.MapExtractor, bench: Mapping, scale: float = 1.0) -> dict:
    """``{(dataset, seed): {"db", "queries", "train": cached lower maps}}`` of every benchmark at one scale."""
    return {key: {part: ex.maps(getattr(b, part), b.name, part, scale) for part in PARTS} for key, b in bench.items()}


def describe_parts(ex: extract.MapExtractor, low: Mapping, fns: Mapping, net: nn.Module | None = None) -> dict:
    """Every pooling of ``fns`` on every benchmark part: ``{(dataset, seed, pooling): {part: (N, D) array}}``."""
    desc = {}
    for key, parts in low.items():
        per_part = {part: ex.describe(v, fns, net=net) for part, v in parts.items()}
        for name in fns:
            desc[key + (name,)] = {part: per_part[part][name] for part in per_part}
    return desc


def rmac_region_loop(x: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """R-MAC the slow way, one region at a time, as the reference code does: (N, K, H, W) maps → (N, K)."""
    v = torch.zeros(x.shape[:2])
    for t, l, h, w in pooling.rmac_regions(x.shape[2], x.shape[3], levels).tolist():
        r = x[:, :, t : t + h, l : l + w].amax(dim=(2, 3))
        v += r / (r.norm(dim=1, keepdim=True) + 1e-6)
    return v / (v.norm(dim=1, keepdim=True) + 1e-6)


def max_diff(f: Callable, g: Callable, maps: Sequence[torch.Tensor]) -> float:
    """Largest |f(m) - g(m)| over a few (K, H, W) maps, each pooled as a batch of one."""
    return max(float((f(m[None]) - g(m[None])).abs().max()) for m in maps)


@torch.no_grad()
def zero_fraction(net: nn.Module, low: extract.Maps, device: str = "cpu") -> float:
    """Share of exact zeros in ``net``'s output maps (mean over the images of ``low``, one at a time)."""
    net = net.to(device).eval()
    low = torch.stack(list(low)) if isinstance(low, list) and len({t.shape for t in low}) == 1 else low
    return float(np.mean([(net(m[None].to(device)) == 0).float().mean().item() for m in low]))


# ---------------------------------------------------------------------------------------------------------------
# evaluation


def rmap(q: np.ndarray, db: np.ndarray, gnd: Sequence[dict]) -> dict[str, float]:
    """Revisited mAP in percent for queries q (Q, D) against db (N, D): ``{'easy', 'medium', 'hard'}``."""
    r = metrics.revisited_map(np.asarray(q) @ np.asarray(db).T, gnd)
    return {k: 100.0 * float(r[k]["mAP"]) for k in PROTOCOLS}


def mean_std(vals: Sequence[float]) -> str:
    """``"mean ± std"`` with one decimal (just the value for one seed)."""
    return f"{np.mean(vals):.1f} ± {np.std(vals):.1f}" if len(vals) > 1 else f"{vals[0]:.1f}"


@dataclass
class Evaluator:
    """The revisited evaluation of descriptor pipelines on one dataset over the seeds.

    A pipeline is: descriptors → optional whitening (learned on the train split, cached per network, seed, pooling
    and kind) → optional DBA on the database → optional α-QE of the queries → revisited mAP (%).

    Args:
        bench: ``{(dataset, seed): benchmark}``.
        dataset: the dataset evaluated (the first of the run).
        seeds: the seeds, one benchmark each.
        whiten_dim, whiten_power: the main tables' PCA-whitening (kept dimensions, eigenvalue power β).
        qe_n, qe_alpha: α-query expansion (top-n database vectors, α; 0 = average QE).
        dba_k: neighbours of database-side augmentation (same α).
    """

    bench: Mapping
    dataset: str
    seeds: Sequence[int]
    whiten_dim: int
    whiten_power: float
    qe_n: int
    qe_alpha: float
    dba_k: int
    cache: dict = field(default_factory=dict)  # (network, dataset, seed, pooling, kind) → Whitening

    @classmethod
    def from_params(cls, bench: Mapping, p: Any, seeds: Sequence[int]) -> "Evaluator":
        return cls(bench, p.datasets[0], list(seeds), p.whiten_dim, p.whiten_power, p.qe_n, p.qe_alpha, p.dba_k)

    def b(self, s: int):
        """The benchmark of seed ``s``."""
        return self.bench[(self.dataset, s)]

    def whitener(self, desc: Mapping, net: str, s: int, name: str, kind: str = "PCA-w") -> whitening.Whitening:
        """The whitening of ``desc[(dataset, s, name)]``, learned once per ``(net, dataset, s, name, kind)``.

        kind: ``"PCA-w"`` (``whiten_dim``, β = ``whiten_power``), ``"full PCA-w"`` (β = ½), ``"Lw"`` (the learned
        whitening on matching train pairs) or ``"PCA-w on test db"`` (the over-fitting mistake: learned on the
        test database itself).
        """
        key = (net, self.dataset, s, name, kind)
        if key not in self.cache:
            d = desc[(self.dataset, s, name)]
            dim = min(self.whiten_dim, d["train"].shape[1])
            if kind == "PCA-w":
                self.cache[key] = whitening.learn_pca_whitening(d["train"], dim=dim, power=self.whiten_power)
            elif kind == "full PCA-w":
                self.cache[key] = whitening.learn_pca_whitening(d["train"], dim=dim, power=0.5)
            elif kind == "Lw":
                qi, pi = mining.positive_pairs(self.b(s).train_groups, n=4 * len(d["train"]), seed=s)
                self.cache[key] = whitening.learn_supervised_whitening(d["train"], qi, pi, dim=dim)
            elif kind == "PCA-w on test db":
                self.cache[key] = whitening.learn_pca_whitening(d["db"], dim=dim, power=self.whiten_power)
            else:
                raise ValueError(f"kind: expected 'PCA-w', 'full PCA-w', 'Lw' or 'PCA-w on test db', got {kind!r}")
        return self.cache[key]

    def post(
        self, d: Mapping, w: Callable | None = None, qe: bool = False, dba: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(queries, db)`` of ``d`` after whitening ``w`` (if any) → DBA (if ``dba``) → α-QE (if ``qe``)."""
        q, db = (d["queries"], d["db"]) if w is None else (w(d["queries"]), w(d["db"]))
        if dba:
            db = expansion.database_side_augmentation(db, k=self.dba_k, alpha=self.qe_alpha)
        if qe:
            q = expansion.alpha_query_expansion(q, db, n=self.qe_n, alpha=self.qe_alpha)
        return q, db

    def pipeline(
        self,
        desc: Mapping,
        name: str,
        s: int,
        kind: str | None = None,
        net: str = "ots",
        qe: bool = False,
        dba: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(queries, db)`` of pooling ``name`` on seed ``s``, whitened with ``kind`` (None: not whitened)."""
        d = desc[(self.dataset, s, name)]
        return self.post(d, None if kind is None else self.whitener(desc, net, s, name, kind), qe=qe, dba=dba)

    def scores(
        self, desc: Mapping, name: str, kind: str | None = None, net: str = "ots", qe: bool = False, dba: bool = False
    ) -> dict[str, list[float]]:
        """Revisited mAP (%) of one pipeline on every seed: ``{'easy', 'medium', 'hard': [one per seed]}``."""
        per = {k: [] for k in PROTOCOLS}
        for s in self.seeds:
            r = rmap(*self.pipeline(desc, name, s, kind, net, qe, dba), self.b(s).gnd)
            for k in per:
                per[k].append(r[k])
        return per

    def whitening_sweep(self, desc: Mapping, name: str, n: int, dims: Sequence[int], beta: float) -> tuple:
        """Medium mAP of PCA-whitening learned on ``n`` train descriptors (a seeded subset) at every dimension
        ``d < n`` of ``dims``: ``(dims kept, mean over seeds (len(dims kept),))``."""
        ys, dn = [], [dd for dd in dims if dd < n]  # d ≤ N - 1: beyond, the extra directions have no variance
        for s in self.seeds:
            d = desc[(self.dataset, s, name)]
            sub = np.random.default_rng(s).permutation(len(d["train"]))[:n]
            ys.append(
                [
                    rmap(
                        *self.post(d, whitening.learn_pca_whitening(d["train"][sub], dim=dd, power=beta)), self.b(s).gnd
                    )["medium"]
                    for dd in dn
                ]
            )
        return dn, np.mean(ys, 0)

    def qe_per_query(self, desc: Mapping, name: str, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query of seed ``s``: the precision of the top ``qe_n`` results before α-QE (Q,) and the change of
        Medium AP that α-QE makes, as a fraction in [-1, 1] (Q,); PCA-whitened ``name`` descriptors."""
        d, b = desc[(self.dataset, s, name)], self.b(s)
        q0, db0 = self.post(d, self.whitener(desc, "ots", s, name))
        q1, _ = self.post(d, self.whitener(desc, "ots", s, name), qe=True)
        ap0 = np.asarray(metrics.revisited_map(q0 @ db0.T, b.gnd)["medium"]["aps"])
        ap1 = np.asarray(metrics.revisited_map(q1 @ db0.T, b.gnd)["medium"]["aps"])
        top = np.argsort(-(q0 @ db0.T), axis=1)[:, : self.qe_n]
        prec = np.array([np.isin(top[i], np.concatenate([g["easy"], g["hard"]])).mean() for i, g in enumerate(b.gnd)])
        return prec, ap1 - ap0


def gem_sweep(ex: extract.MapExtractor, low: Mapping, ev: Evaluator, p_values: Sequence[float]) -> dict:
    """Revisited mAP of GeM at every power of ``p_values`` on the off-the-shelf maps:
    ``{seed: [rmap dict per p]}``."""
    sweep = {s: [] for s in ev.seeds}
    for s in ev.seeds:
        fns = {p: (lambda m, p=p: pooling.gem_pool(m, p)) for p in p_values}
        d = {part: ex.describe(low[(ev.dataset, s)][part], fns) for part in ("queries", "db")}
        for p in p_values:
            sweep[s].append(rmap(d["queries"][p], d["db"][p], ev.b(s).gnd))
    return sweep


def multiscale_scores(
    ex: extract.MapExtractor, ev: Evaluator, fn: nn.Module, name: str, scales: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Medium mAP per seed of pooling ``name`` at the first scale and of its multi-scale descriptor (the scales'
    descriptors combined by :func:`xmr_lib.retrieval.pooling.combine_scales`, power 3 for GeM, else 1): the maps of
    every scale are extracted once and cached. Returns ``(single, multi)``."""
    single, multi = [], []
    for s in ev.seeds:
        b = ev.b(s)
        per_scale = {part: [] for part in ("db", "queries")}
        for sc in scales:
            for part in per_scale:
                per_scale[part].append(
                    torch.from_numpy(ex.describe(ex.maps(getattr(b, part), b.name, part, sc), {name: fn})[name])
                )
        power = 3.0 if name == "gem" else 1.0
        q = pooling.combine_scales(per_scale["queries"], power).numpy()
        db = pooling.combine_scales(per_scale["db"], power).numpy()
        single.append(rmap(per_scale["queries"][0].numpy(), per_scale["db"][0].numpy(), b.gnd)["medium"])
        multi.append(rmap(q, db, b.gnd)["medium"])
    return single, multi


def big_table(ev: Evaluator, desc: Mapping, label: str, net: str, poolings: Sequence[str]) -> tuple[list, dict]:
    """Every pooling × {no whitening, PCA-w} × {no QE, α-QE}: ``(rows of mean E / M / H mAP, metrics)``, the
    metrics named ``table/<label>/<pooling>/<none|PCA-w>/<noqe|aqe>/<protocol>`` (one value per seed)."""
    rows, rec = [], {}
    for name in poolings:
        for wname in ("none", "PCA-w"):
            for qe in (False, True):
                per = ev.scores(desc, name, "PCA-w" if wname == "PCA-w" else None, net, qe=qe)
                rec.update({f"table/{label}/{name}/{wname}/{'aqe' if qe else 'noqe'}/{k}": v for k, v in per.items()})
                rows.append(
                    {
                        "network": label,
                        "pooling": name,
                        "whitening": wname,
                        "QE": "α-QE" if qe else "—",
                        **{k[0].upper(): np.mean(v) for k, v in per.items()},
                    }
                )
    return rows, rec


# ---------------------------------------------------------------------------------------------------------------
# fine-tuning


def ft_net(upper: nn.Module, head: str) -> finetune.RetrievalNet:
    """A copy of the trunk's upper part with a pooling head (GeM starts at p = 3, learnable)."""
    pool = pooling.GeM(p=3.0, learnable=True) if head == "gem" else pooling.get_pooling(head)
    return finetune.RetrievalNet(copy.deepcopy(upper), pool)


def finetune_heads(
    upper: nn.Module,
    bench: Mapping,
    low: Mapping,
    p: Any,
    full: bool,
    ex: extract.MapExtractor | None = None,
    train: sfm120k.SfmSplit | None = None,
) -> tuple[dict, dict]:
    """Fine-tune one network per head of ``p.ft_heads`` and per benchmark (the first dataset only unless ``full``)
    on the cached lower maps of its train split, with the cirtorch contrastive loss and hard negatives (full
    profile: checkpointed, resumable). With ``train`` (retrieval-SfM-120k, :func:`training_set`) one network per
    head and seed is trained on it instead (:func:`train_sfm`, ``ex``'s frozen lower part) and serves every test
    benchmark. Returns ``({(ds, s, head): net (CPU, eval)}, {(ds, s, head): history})``."""
    nets, hist = {}, {}
    if train is not None:
        for s in sorted({s for (_, s) in bench}):
            for head in p.ft_heads:
                net = ft_net(upper, head)
                ck = checkpoint.Checkpoint(f"02_finetune/sfm120k_seed{s}_{head}_{ex.model}") if full else None
                h = train_sfm(net, ex, train, p, s, ck)
                for ds, s2 in bench:
                    if s2 == s:
                        nets[(ds, s, head)], hist[(ds, s, head)] = net.cpu().eval(), h
        return nets, hist
    for (ds, s), b in bench.items():
        if ds != p.datasets[0] and not full:
            continue
        for head in p.ft_heads:
            net = ft_net(upper, head)
            ck = checkpoint.Checkpoint(f"02_finetune/{ds}_seed{s}_{head}") if full else None
            hist[(ds, s, head)] = train_cirtorch(net, low[(ds, s)]["train"], b.train_groups, p, s, ck)
            nets[(ds, s, head)] = net.cpu().eval()
    return nets, hist


def train_cirtorch(
    net: nn.Module, maps: Any, groups: Any, p: Any, seed: int, ck: Any = None
) -> finetune.FinetuneHistory:
    """The chapter's fine-tuning protocol (cirtorch's): ``net`` trained in place on cached lower ``maps`` of a train
    split with the contrastive loss on hard negatives mined every epoch, with the ``ft_*`` knobs of ``p``."""
    return finetune.train_retrieval_net(
        net,
        maps,
        groups,
        epochs=p.ft_epochs,
        queries_per_epoch=p.ft_queries,
        pool_size=p.ft_pool,
        n_negatives=p.ft_negatives,
        loss="contrastive",
        margin=p.ft_margin,
        contrastive_form="cirtorch",
        lr=p.ft_lr,
        pool_lr_mult=p.ft_p_lr_mult,
        seed=seed,
        device=p.device,
        checkpoint=ck,
    )


def finetuned_descriptors(
    ex: extract.MapExtractor, nets: Mapping, low: Mapping, fns: Mapping, ref_head: str, device: str = "cpu"
) -> tuple[dict, dict]:
    """Descriptors of the fine-tuned networks: ``(own, on_maps)``.

    ``own[(ds, s, head)]`` = ``{part: (N, D)}``: each network with its own head, L2-normalised;
    ``on_maps[(ds, s, pooling)]``: every pooling of ``fns`` on the maps of the ``ref_head`` network."""
    own, on_maps = {}, {}
    for (ds, s, head), net in nets.items():
        f = {"own": net.pool.to(device)} | (dict(fns) if head == ref_head else {})
        d = {part: ex.describe(v, f, net=net.features) for part, v in low[(ds, s)].items()}
        own[(ds, s, head)] = {part: pooling.l2_normalize(torch.from_numpy(d[part]["own"])).numpy() for part in d}
        if head == ref_head:
            for name in fns:
                on_maps[(ds, s, name)] = {part: d[part][name] for part in d}
    return own, on_maps


# ---------------------------------------------------------------------------------------------------------------
# fine-tuning on retrieval-SfM-120k (cirtorch's recipe; full profile when the set is under data_root)

SFM_BATCH = 5  # tuples per Adam step (cirtorch README: --batch-size 5)
SFM_WEIGHT_DECAY = 1e-6  # cirtorch train.py --weight-decay
SFM_LR_DECAY = math.exp(-0.01)  # cirtorch train.py: exponential decay per epoch


def training_set(p: Any) -> sfm120k.SfmSplit | None:
    """The fine-tuning data of ``p.train_set``, said in one printed line: retrieval-SfM-120k's train split
    (:func:`xmr_lib.data.sfm120k.read_sfm120k`) when it is asked for (``"sfm120k"``: required, a FileNotFoundError
    names the fetch command) or found under ``p.data_root`` (``"auto"``); None: the benchmark's own train split."""
    mode = p.get("train_set", "benchmark")
    if mode not in ("benchmark", "auto", "sfm120k"):
        raise ValueError(f"train_set: expected 'benchmark', 'auto' or 'sfm120k', got {mode!r}")
    root = None if p.get("fell_back", False) else p.get("data_root")
    if mode == "sfm120k" or (mode == "auto" and sfm120k.find_sfm120k(root) is not None):
        s = sfm120k.read_sfm120k(root, "train")
        print(
            f"fine-tuning data: retrieval-SfM-120k ({len(s):,} images, {len(np.unique(s.clusters)):,} clusters, "
            f"{len(s.qidxs):,} query-positive pairs), cirtorch's recipe (sfm_* knobs)"
        )
        return s
    where = "the other revisited set" if p.datasets[0] in ("roxford5k", "rparis6k") else "its own train split"
    extra = f" (retrieval-SfM-120k is not under data_root: {sfm120k.FETCH_HINT})" if mode == "auto" else ""
    print(f"fine-tuning data: the benchmark's train split — {where}{extra}")
    return None


class SfmInputs:
    """The images of an SfM-120k split as inputs of a network's trainable top: image ``i`` → longer side ``size``
    → normalised → the frozen ``lower`` part (no gradient) → ``(C, h, w)`` maps on ``device``. Nothing is cached:
    the maps of 100k images at 362 px would not fit on disk; cirtorch too reads every image again each epoch.
    :meth:`decoded` gives the CPU half (decode, resize, normalise) alone, for :func:`embed_items`' loader workers."""

    def __init__(self, images: Sequence, lower: nn.Module, size: int, mean, std, device: torch.device):
        self.images, self.lower, self.size, self.mean, self.std, self.device = images, lower, size, mean, std, device

    def __len__(self) -> int:
        return len(self.images)

    def decoded(self, i: int) -> torch.Tensor:
        """Image ``i`` as the trunk's ``(3, h, w)`` input on the CPU (:func:`xmr_lib.encoders.extract.to_input`)."""
        return extract.to_input(self.images[int(i)], self.size, self.mean, self.std)

    @torch.no_grad()
    def __getitem__(self, i: int) -> torch.Tensor:
        return self.lower(self.decoded(i)[None].to(self.device))[0]


class _Decoded(torch.utils.data.Dataset):
    """``inputs.decoded(idx[k])`` for k = 0 … len(idx) − 1 (run in DataLoader workers)."""

    def __init__(self, inputs: SfmInputs, idx: np.ndarray):
        self.inputs, self.idx = inputs, np.asarray(idx)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, k: int) -> torch.Tensor:
        return self.inputs.decoded(self.idx[k])


def _loader_workers(device: torch.device) -> int:
    """Decoding workers for :func:`embed_items`: up to 4 on CUDA (the GPU waits on JPEG decoding otherwise), none on
    the CPU (the cores run the network)."""
    return min(4, os.cpu_count() or 1) if device.type == "cuda" else 0


@torch.no_grad()
def embed_items(net: nn.Module, inputs: SfmInputs, idx: np.ndarray, device: torch.device) -> np.ndarray:
    """Descriptors ``(len(idx), D)`` float32 of ``inputs[idx]``, one image at a time (variable sizes, as cirtorch).
    Images are decoded by DataLoader workers on CUDA (pinned, copied without blocking) while the GPU runs
    ``inputs.lower`` and ``net``; the descriptors stay on the device until one copy at the end."""
    net.eval()
    workers = _loader_workers(device)
    loader = torch.utils.data.DataLoader(
        _Decoded(inputs, idx),
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=8 if workers else None,
    )
    out = [net(inputs.lower(x[None].to(device, non_blocking=True))) for x in loader]
    return torch.cat(out).float().cpu().numpy() if out else np.zeros((0, 0), np.float32)


class SfmTupleTask(finetune.FinetuneTask):
    """:class:`xmr_lib.train.finetune.FinetuneTask` whose epochs draw cirtorch's SfM-120k tuples: ``qsize``
    published query–positive pairs and a pool of ``poolsize`` images (:func:`xmr_lib.data.sfm120k.draw_epoch`),
    both embedded by the current network, and each query's ``n_negatives`` hardest pool images, never of its
    cluster and at most one per cluster (:func:`xmr_lib.data.sfm120k.hardest_negatives`). Training steps, loss,
    optimiser, schedule and checkpoints are the parent's."""

    def __init__(self, net: nn.Module, inputs: SfmInputs, split: sfm120k.SfmSplit, **kw):
        super().__init__(net, inputs, split.clusters, **kw)
        self.split = split

    def on_epoch_start(self, trainer: loop.Trainer, epoch: int) -> None:
        net, dev, g = self.net, self.device, self.g
        self.t0 = time.time()
        rng = self.rng = np.random.default_rng([int(self.seed), epoch])
        torch.manual_seed(int(self.seed) * 1000 + epoch)
        qi, pi, pool = sfm120k.draw_epoch(self.split, self.queries_per_epoch, self.pool_size, rng)
        qd, pd_ = embed_items(net, self.inputs, qi, dev), embed_items(net, self.inputs, pool, dev)
        ids, _ = sfm120k.hardest_negatives(qd, pd_, g[qi], g[pool], self.n_negatives)
        found = ids >= 0
        neg = pool[np.maximum(ids, 0)]  # (Q, k) indices into the split
        if not found.all():  # the pool held too few other clusters: random images of other clusters
            neg = np.where(found, neg, mining.random_negatives(g[qi], g, self.n_negatives, rng))
        dn = np.linalg.norm(qd[:, None, :] - pd_[np.maximum(ids, 0)], axis=2)[found]
        self.hist.negative_distance.append(float(dn.mean()) if dn.size else math.nan)
        pdesc = embed_items(net, self.inputs, pi, dev)
        self.hist.positive_distance.append(float(np.linalg.norm(qd - pdesc, axis=1).mean()))
        self.qi, self.pi, self.neg, self.total = qi, pi, neg, 0.0
        net.train()
        finetune.freeze_batchnorm(net)


def train_sfm(
    net: nn.Module, ex: extract.MapExtractor, split: sfm120k.SfmSplit, p: Any, seed: int, ck: Any = None
) -> finetune.FinetuneHistory:
    """cirtorch's recipe on retrieval-SfM-120k: ``net`` (the trainable top of ``ex``'s trunk + a pooling head)
    trained in place on tuples (:class:`SfmTupleTask`) of images at ``p.sfm_image_size`` px passed through ``ex``'s
    frozen lower part, with the contrastive loss (cirtorch form, margin ``p.sfm_margin``), ``p.ft_negatives``
    negatives, ``p.sfm_queries`` tuples and a pool of ``p.sfm_pool`` per epoch, ``p.sfm_epochs`` epochs, batches of
    :data:`SFM_BATCH` tuples, Adam (lr ``p.sfm_lr``, weight decay 1e-6, GeM's p at ``p.ft_p_lr_mult`` × lr without
    decay), lr × exp(-0.01) per epoch, BatchNorm frozen; bf16 AMP on CUDA. Checkpointed every epoch (``ck``)."""
    dev = torch.device(resolve_device(p.device))
    if split.clusters.size and len(np.unique(split.clusters)) <= p.ft_negatives:
        raise ValueError(
            f"ft_negatives: {p.ft_negatives} negatives per query need more clusters than the "
            f"{len(np.unique(split.clusters))} of {split.source}"
        )
    inputs = SfmInputs(split.images, ex.lower.to(dev).eval(), p.sfm_image_size, ex.mean, ex.std, dev)
    dist = distributed.context(dev)
    task = SfmTupleTask(
        net,
        inputs,
        split,
        queries_per_epoch=p.sfm_queries,
        pool_size=p.sfm_pool,
        n_negatives=p.ft_negatives,
        loss="contrastive",
        margin=p.sfm_margin,
        contrastive_form="cirtorch",
        lr=p.sfm_lr,
        pool_lr_mult=p.ft_p_lr_mult,
        weight_decay=SFM_WEIGHT_DECAY,
        lr_decay=SFM_LR_DECAY,
        batch_tuples=SFM_BATCH,
        seed=seed,
        device=dev,
        dist=dist,
    )
    trainer = loop.Trainer(
        max_epochs=int(p.sfm_epochs), device=dev, amp=True, desc="fine-tuning on SfM-120k", checkpoint=ck, dist=dist
    )
    trainer.fit(task)
    return task.hist


def sfm_whitened_scores(ex: extract.MapExtractor, nets: Mapping, ft_desc: Mapping, bench: Mapping, p: Any) -> dict:
    """cirtorch's learned whitening L_w for each GeM network trained on SfM-120k: learned on the pairs of
    ``retrieval-SfM-120k-whiten.pkl`` when it is there, else on SfM-120k's val pairs, from descriptors at
    ``p.image_size`` (the test size), then applied to the network's test descriptors ``ft_desc[(ds, s, 'gem')]``.
    Returns ``{dataset: {'easy', 'medium', 'hard'}}`` (revisited mAP, %) and the pairs' source in ``'_pairs'``."""
    root = p.get("data_root")
    pairs = sfm120k.read_whiten_pairs(root)
    src = sfm120k.WHITEN_PICKLE if pairs is not None else "SfM-120k val"
    pairs = pairs if pairs is not None else sfm120k.read_sfm120k(root, "val")
    dev = torch.device(resolve_device(p.device))
    out, cache = {"_pairs": src}, {}
    for (ds, s, head), net in nets.items():
        if head != "gem":
            continue
        if id(net) not in cache:  # one L_w per network (the same network serves every test set)
            full = finetune.RetrievalNet(nn.Sequential(ex.lower, net.features), net.pool).to(dev)
            inputs = SfmInputs(pairs.images, nn.Identity(), p.image_size, ex.mean, ex.std, dev)
            x = embed_items(full, inputs, np.arange(len(pairs)), dev)
            dim = min(int(p.whiten_dim), x.shape[1])
            cache[id(net)] = whitening.learn_supervised_whitening(x, pairs.qidxs, pairs.pidxs, dim=dim)
            net.cpu()
        w, d = cache[id(net)], ft_desc[(ds, s, head)]
        out[ds] = rmap(w(d["queries"]), w(d["db"]), bench[(ds, s)].gnd)
    return out


# ---------------------------------------------------------------------------------------------------------------
# ranked results


def pipeline_names(ft_heads: Sequence[str]) -> list[str]:
    """The three descriptors shown in the ranked grids (the fine-tuned one when a GeM head was fine-tuned)."""
    return ["MAC", "GeM + PCA-w + αQE"] + (["fine-tuned GeM + PCA-w + αQE"] if "gem" in ft_heads else [])


def named_pipeline(ev: Evaluator, desc: Mapping, ft_desc: Mapping, kind: str, s: int) -> tuple:
    """(queries, db) descriptors of a pipeline of :func:`pipeline_names` on seed ``s``."""
    if kind == "MAC":
        d = desc[(ev.dataset, s, "mac")]
        return d["queries"], d["db"]
    src, net = (desc, "ots") if kind.startswith("GeM") else (ft_desc, "ft-head")
    return ev.pipeline(src, "gem", s, "PCA-w", net, qe=True)


def status_of(b: Any, qi: int, ids: Sequence[int]) -> list[str]:
    """``"relevant"`` (easy or hard), ``"junk"`` or ``"irrelevant"`` for database ids ranked for query ``qi``."""
    g = b.gnd[qi]
    ok, junk = set(np.concatenate([g["easy"], g["hard"]]).tolist()), set(g["junk"].tolist())
    return ["relevant" if j in ok else "junk" if j in junk else "irrelevant" for j in ids]


def ranked(ev: Evaluator, desc: Mapping, ft_desc: Mapping, kind: str, s: int, queries: Sequence[int], k: int) -> dict:
    """The top ``k`` of some queries under a named pipeline, as the keyword arguments of
    :func:`xmr_lib.course.viz.ranked_grids` (``queries, results, status, row_titles``)."""
    b = ev.b(s)
    q, db = named_pipeline(ev, desc, ft_desc, kind, s)
    ids = np.argsort(-(q[queries] @ db.T), axis=1, kind="stable")[:, :k]
    return dict(
        queries=[b.queries[i] for i in queries],
        results=[[b.db[j] for j in r] for r in ids],
        status=[status_of(b, i, r) for i, r in zip(queries, ids)],
        row_titles=[f"q{i}" for i in queries],
    )


def ranked_view(ev: Evaluator, desc: Mapping, ft_desc: Mapping, s: int, grid: Callable[..., Any]) -> Callable:
    """``draw(query, pipeline, k)`` for ``viz.explorer``: the top ``k`` of one query of seed ``s`` under a pipeline
    of :func:`pipeline_names`, drawn by ``grid`` (:func:`xmr_lib.course.viz.ranked_grids`, passed in: the figure
    helpers sit in a layer above the chapters). Every descriptor was computed before; ``draw`` only ranks."""

    def draw(query: int, pipeline: str, k: int):
        fig = grid(**ranked(ev, desc, ft_desc, pipeline, s, [int(query)], int(k)))
        fig.suptitle(f"{pipeline}: query {int(query)}, top {int(k)}", fontsize=10, y=1.06)
        return fig

    return draw


def plot_finetune_history(hist: Mapping, dataset: str, seeds: Sequence[int], heads: Sequence[str], epochs: int):
    """Fine-tuning curves per epoch (integer ticks): the contrastive loss and the query – mined negative distance
    of each head (mean over seeds), and GeM's learned p per seed (from its initial 3). Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    ep = np.arange(1, epochs + 1)
    for head in heads:
        h = [hist[(dataset, s, head)] for s in seeds]
        axes[0].plot(ep, np.mean([x.loss for x in h], 0), marker="o", label=head)
        axes[1].plot(ep, np.mean([x.negative_distance for x in h], 0), marker="o", label=head)
        if head == "gem":
            for s, x in zip(seeds, h):
                axes[2].plot(np.arange(0, epochs + 1), [3.0] + list(x.p), marker="o", label=f"seed {s}")
    axes[0].set(xlabel="epoch", ylabel="contrastive loss per tuple", title="training loss (mean over seeds)")
    axes[1].set(xlabel="epoch", ylabel="L2 distance", title="query – mined negative distance")
    axes[2].set(xlabel="epoch (0: before)", ylabel="p", title="GeM's learned p")
    axes[2].ticklabel_format(useOffset=False, axis="y")
    for ax in axes:
        if epochs <= 12:  # a tick per epoch: no 1.5-th epoch, even for a run of one epoch
            ax.set_xticks(np.arange(0 if ax is axes[2] else 1, epochs + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# full profile: the depth and dimension sweeps (Fig. 2.13)


@torch.no_grad()
def trunk_descriptors(
    trunk: nn.Module, images: Sequence, size: int, fns: Mapping[str, Callable], device: str = "cpu"
) -> dict[str, np.ndarray]:
    """Pooled descriptors of a whole trunk, one image at a time (longer side ``size``; nothing cached — at 1024 px
    the final maps of a database would not fit on disk): ``{name: (N, D) float32}``, L2-normalised by the poolings."""
    trunk = trunk.to(device).eval()
    out = {k: [] for k in fns}
    for i in range(len(images)):
        maps = trunk(extract.to_input(images[i], size, trunk.mean, trunk.std)[None].to(device))
        for k, f in fns.items():
            out[k].append(f(maps).float().cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def aps(q: np.ndarray, db: np.ndarray, gnd: Sequence[dict], protocol: str = "medium") -> list[float]:
    """Per-query AP (%) of one protocol (the paired samples of the full profile's orderings)."""
    r = metrics.revisited_map(np.asarray(q) @ np.asarray(db).T, gnd)
    return [100.0 * float(a) for a in r[protocol]["aps"]]


def finetune_trunk(
    name: str, bench: Mapping, p: Any, train: sfm120k.SfmSplit | None = None
) -> tuple[backbones.FeatureTrunk, finetune.FinetuneHistory]:
    """The depth sweep's fine-tuning (Fig. 2.13a: "fine-tuned by the cirtorch protocol"): trunk ``name``'s top
    ``p.ft_blocks`` blocks trained in place, with the MAC head the sweep measures, by the protocol that fine-tunes
    ``p.backbone``: on retrieval-SfM-120k by cirtorch's recipe (:func:`train_sfm`) when ``train`` is given, else
    :func:`train_cirtorch` on the cached lower maps of the first dataset's train split (both checkpointed,
    resumable). Returns ``(trunk, history)``."""
    trunk, ex = extractor(p, name)
    ds = p.datasets[0]
    b = bench[(ds, p.seed)]
    net = finetune.RetrievalNet(ex.upper, pooling.get_pooling("mac"))  # ex.upper shares the trunk's modules
    if train is not None:
        hist = train_sfm(net, ex, train, p, p.seed, checkpoint.Checkpoint(f"02_depth_finetune/sfm120k_{ex.model}"))
        return trunk.cpu().eval(), hist
    ck = checkpoint.Checkpoint(f"02_depth_finetune/{ds}_seed{p.seed}_{ex.model}")
    hist = train_cirtorch(net, ex.maps(b.train, b.name, "train"), b.train_groups, p, p.seed, ck)
    return trunk.cpu().eval(), hist


def depth_sweep(
    bench: Mapping, p: Any, names: Sequence[str], train: sfm120k.SfmSplit | None = None
) -> tuple[dict, dict]:
    """Fig. 2.13a: MAC of every trunk of ``names`` on the first dataset's benchmark (the thesis' default dimensions:
    no whitening), each trunk fine-tuned first (:func:`finetune_trunk`) when ``p.finetune_depth``, else off the shelf.
    Returns ``(mAP rows {trunk: {'dim', 'easy', 'medium', 'hard'}}, descriptors {trunk: {part: (N, D)}})``; the
    per-query Medium APs are in the rows (``'medium_aps'``), and with fine-tuning the training loss of the first and
    the last epoch (``'ft_loss_first'``, ``'ft_loss_last'``); ``train``: retrieval-SfM-120k (:func:`finetune_trunk`)."""
    b = bench[(p.datasets[0], p.seed)]
    rows, desc = {}, {}
    for name in names:
        ft = {}
        if p.get("finetune_depth", False):
            trunk, hist = finetune_trunk(name, bench, p, train)
            ft = {"ft_loss_first": hist.loss[0], "ft_loss_last": hist.loss[-1]}
        else:
            trunk = trunk_of(name, p)
        fns = {"mac": pooling.get_pooling("mac").to(p.device)}
        desc[name] = {
            part: trunk_descriptors(trunk, getattr(b, part), p.image_size, fns, p.device)["mac"] for part in PARTS
        }
        r = rmap(desc[name]["queries"], desc[name]["db"], b.gnd)
        rows[name] = {
            "dim": desc[name]["db"].shape[1],
            **r,
            "medium_aps": aps(desc[name]["queries"], desc[name]["db"], b.gnd),
            **ft,
        }
        del trunk
    return rows, desc


def dimension_sweep(bench: Mapping, p: Any, d: Mapping, dims: Sequence[int]) -> dict:
    """Fig. 2.13b: PCA-whitening (power ``p.whiten_power``) learned on the train split, to every dimension of ``dims``
    that the descriptors ``d`` ({part: (N, D)}) and the number of train images allow: ``{dim: {'medium',
    'medium_aps'}}``."""
    b = bench[(p.datasets[0], p.seed)]
    out = {}
    for k in dims:
        if k > d["train"].shape[1] or k >= len(d["train"]):
            print(f"dimension {k}: skipped (descriptors of {d['train'].shape[1]} dims, {len(d['train'])} train images)")
            continue
        w = whitening.learn_pca_whitening(d["train"], dim=int(k), power=p.whiten_power)
        q, db = w(d["queries"]), w(d["db"])
        out[int(k)] = {"medium": rmap(q, db, b.gnd)["medium"], "medium_aps": aps(q, db, b.gnd)}
    return out


def sweep_records(depth: Mapping, dims: Mapping) -> dict:
    """The metrics of the two sweeps: ``full/depth/<trunk>/<protocol|dim|medium_aps>`` and
    ``full/dim/<k>/medium``, plus the four per-query lists the saturation claim reads (``min``, ``second``,
    ``before_max``, ``max``)."""
    rec = {f"full/depth/{n}/{k}": v for n, r in depth.items() for k, v in r.items()}
    rec |= {f"full/dim/{k}/medium": r["medium"] for k, r in dims.items()}
    ks = sorted(dims)
    if len(ks) >= 2:
        named = {"min": ks[0], "second": ks[1], "before_max": ks[-2], "max": ks[-1]}
        rec |= {f"full/dim/{n}/medium_aps": dims[k]["medium_aps"] for n, k in named.items()}
    return rec


def plot_sweeps(depth: Mapping, dims: Mapping, dim_backbone: str):
    """Fig. 2.13 as we measure it: (a) Medium mAP per trunk, deepest last; (b) Medium mAP against the dimension
    (log scale). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    names = list(depth)
    axes[0].bar(range(len(names)), [depth[n]["medium"] for n in names], color="tab:blue")
    axes[0].set_xticks(range(len(names)), [f"{n}\n{depth[n]['dim']}-d" for n in names], fontsize=8)
    tuned = bool(depth) and all("ft_loss_last" in r for r in depth.values())
    axes[0].set(ylabel="Medium mAP (%)", title=f"(a) depth: MAC, {'fine-tuned' if tuned else 'off the shelf'}")
    ks = sorted(dims)
    axes[1].plot(ks, [dims[k]["medium"] for k in ks], marker="o")
    if ks:
        axes[1].set_xscale("log", base=2)
    axes[1].set(xlabel="dimension", ylabel="Medium mAP (%)", title=f"(b) dimension: {dim_backbone} MAC + PCA-w")
    return fig


# ---------------------------------------------------------------------------------------------------------------
# full profile: published descriptors and networks


def revisitop_scores(root: Path | None, bench: Mapping) -> dict:
    """Revisited mAP of revisitop's R-GeM descriptors (``<ds>_resnet_rsfm120k_gem.mat`` under ``root``) with our
    protocol: ``{dataset: {'easy', 'medium', 'hard'}}`` for the files found (a missing one is reported)."""
    import scipy.io

    found = {}
    for ds in ("roxford5k", "rparis6k"):
        hits = sorted(root.rglob(f"{ds}_resnet_rsfm120k_gem.mat")) if root else []
        b = next((v for (d_, _), v in bench.items() if d_ == ds), None)
        if not hits or b is None:
            why = f"revisitop R-GeM features not found under {root}" if not hits else "benchmark not loaded"
            print(f"{ds}: {why}; skipping the evaluation-path check")
            continue
        m = scipy.io.loadmat(hits[0])
        X, Q = np.asarray(m["X"], np.float32), np.asarray(m["Q"], np.float32)  # (D, N), (D, Nq) as published
        found[ds] = rmap(Q.T, X.T, b.gnd)
    return found


def descriptors_multiscale(
    net: nn.Module,
    images: Sequence,
    mean: Sequence[float],
    std: Sequence[float],
    power: float,
    size: int,
    scales: Sequence[float],
    device: str = "cpu",
) -> np.ndarray:
    """cirtorch's multi-scale descriptors of a :class:`xmr_lib.train.finetune.RetrievalNet`, one image at a time
    (longer side ``size`` at scale 1): (N, D)."""
    return torch.cat(
        [
            pooling.extract_multiscale(
                net.features,
                extract.to_input(images[i], size, mean, std)[None],
                net.pool,
                scales=scales,
                power=power,
                device=device,
            )
            for i in range(len(images))
        ]
    ).numpy()


def cirtorch_scores(root: Path | None, bench: Mapping, p: Any) -> tuple[dict, bool] | None:
    """The released ``retrievalSfM120k-resnet101-gem`` network (under ``root``; never downloaded), multi-scale at
    ``p.image_size`` with its learned whitening when its meta holds one, on the real benchmarks (the file is looked
    for under ``root``, then in :func:`xmr_lib.core.paths.weights_dirs`):
    ``({dataset: {'easy', 'medium', 'hard'}}, whether L_w was applied)``, or None when the file is absent."""
    nets = sorted(root.rglob("retrievalSfM120k-resnet101-gem*.pth")) if root else []
    if not nets:  # else where `python -m data_scripts fetch cirtorch_resnet101_gem` put it
        try:
            nets = [paths.find_weights("cirtorch_resnet101_gem")]
        except FileNotFoundError:
            print(
                f"no retrievalSfM120k-resnet101-gem*.pth under {root} or in the weights folders; skipping the "
                f"published-network check ({paths.fetch_command('cirtorch_resnet101_gem')} fetches it)"
            )
            return None
    rgem, meta = finetune.load_cirtorch_network(nets[0], device=p.device)
    Lw = meta.get("Lw", {}).get("retrieval-SfM-120k", {}).get("ms")
    wl = (
        None
        if Lw is None
        else whitening.Whitening(
            mean=np.asarray(Lw["m"]).ravel(),
            projection=np.asarray(Lw["P"]),
            eigenvalues=np.ones(len(Lw["P"])),
            kind="supervised",
        )
    )
    res = {}
    for ds in ("roxford5k", "rparis6k"):
        b = next((v for (d_, _), v in bench.items() if d_ == ds), None)
        if b is None:
            continue
        q, db = (
            descriptors_multiscale(
                rgem, imgs, meta["mean"], meta["std"], float(rgem.pool.p), p.image_size, p.scales, p.device
            )
            for imgs in (b.queries, b.db)
        )
        if wl is not None:
            q, db = wl(q), wl(db)
        res[ds] = rmap(q, db, b.gnd)
    return res, wl is not None
