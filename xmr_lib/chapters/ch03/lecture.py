"""The steps notebook 03 (cross-modal hashing with domain uncertainty, thesis chapter 3) calls: loading the features,
training the runs of the ablation (Table 3.3), the code lengths (Table 3.2) and the α / η sweeps (Fig. 3.4),
and the tables, metrics and plots made from them.

Every function returns what the notebook shows or records; none records a metric itself (recording belongs to
:mod:`xmr_lib.course.runs`, a layer above the chapters): a ``*_metrics`` function returns ``{key: value}`` for
``runs.record_many``. Plots here use matplotlib only; the notebook draws the grids and maps of
:mod:`xmr_lib.course.viz` from what these functions return (a drawing helper of ``viz`` is passed in where a
callback needs one).
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from xmr_lib.chapters.ch03 import crossmodal as cm
from xmr_lib.chapters.ch03 import dcmh as D
from xmr_lib.chapters.ch03 import hashing as H
from xmr_lib.chapters.ch03 import ssah as SS
from xmr_lib.core import checkpoint

TASKS = ("i2t", "t2i")
#: the loss terms of Eq. 3.7 (+ DCMH's balance term) → the name of their weight in HashingConfig.weights()
TERM_WEIGHT = {
    "domain": "alpha",
    "pairs": "beta",
    "label": "gamma",
    "multilevel": "eta",
    "quant": "eps",
    "balance": "balance",
}


def _task_name(task: str) -> str:
    """``"i2t"`` → ``"I→T"``."""
    return task.upper().replace("2", "→")


# ---------------------------------------------------------------------------------------------------------------
# §1 the entropy of the domain predictor


def plot_entropy_saturation():
    """Fig. 3.2 (b): the entropy of 𝒟's two-way prediction, and (c): how much gradient that entropy passes back as
    a function of 𝒟's logit margin — almost none once 𝒟 is confident. Returns the Figure."""
    p = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.3))
    ax[0].plot(p, H.binary_entropy(p), lw=2)
    ax[0].set(
        xlabel="P(image)  (P(text) = 1 − P(image))", ylabel="entropy (bits)", title="(b) entropy of D's prediction"
    )
    ax[0].axvline(0.5, ls="--", c="grey")
    ax[0].annotate("maximal uncertainty:\nP = ½, 1 bit", (0.5, 1.0), (0.6, 0.55), arrowprops=dict(arrowstyle="->"))
    margin = np.linspace(-8, 8, 321)
    pm = 1 / (1 + np.exp(-margin))
    grad = np.abs(np.gradient(H.binary_entropy(pm, base=np.e), margin))
    ax[1].plot(margin, H.binary_entropy(pm), label="entropy (bits)")
    ax[1].plot(margin, grad, label="|d entropy / d logit margin|")
    ax[1].set(xlabel="D's logit margin (image − text)", title="(c) a confident D gives almost no gradient")
    ax[1].legend(fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------------
# §2 data


def load_features(p: Mapping[str, Any]) -> cm.CrossModalFeatures:
    """The features, labels and DCMH split of the dataset the parameters ``p`` name (after the chapter's fallback
    rule ran in ``runs.params``: a full run without its real data reads ``dataset="shapes"`` here).

    ``p`` needs ``dataset, data_root, seed, device, image_encoder, text_encoder, image_size, caption_drop, n_query,
    n_train, n_retrieval, image_trunk``."""
    load_kw = {"caption_drop": p["caption_drop"]} if p["dataset"] == "shapes" else {}
    # a fine-tuned trunk (image_trunk, full) reads the images themselves at image_size px
    return cm.prepare_crossmodal_features(
        p["dataset"],
        image_encoder=p["image_encoder"] if p["image_trunk"] == "none" else "raw",
        text_encoder=p["text_encoder"],
        root=p["data_root"],
        seed=p["seed"],
        image_size=p["image_size"],
        device=p["device"],
        split={"n_query": p["n_query"], "n_train": p["n_train"], "n_retrieval": p["n_retrieval"]},
        **load_kw,
    )


def label_text(feats: cm.CrossModalFeatures, i: int) -> str:
    """The labels of item ``i`` without their group prefix, e.g. ``"red, circle, small"``."""
    return ", ".join(n.split(":")[-1] for n, v in zip(feats.label_names, feats.labels[i]) if v)


def example_titles(feats: cm.CrossModalFeatures, idx: Sequence[int], width: int = 30) -> list[str]:
    """One title per item of ``idx``: its caption wrapped to ``width`` characters and its labels in brackets."""
    return [textwrap.fill(feats.texts[i], width) + f"\n[{label_text(feats, i)}]" for i in idx]


def shared_label_table(labels: np.ndarray) -> pd.DataFrame:
    """How many labels the pairs among ``labels`` (n, c multi-hot) share, and the targets each count gets: the
    binary similarity S of Eqs. 3.4–3.5, the multi-level target w = t / c of Eq. 3.3 and its logit (the inner
    product whose sigmoid is w). One row per shared-label count t."""
    t = cm.shared_label_counts(labels, labels)
    vals, cnt = np.unique(t, return_counts=True)
    c = labels.shape[1]
    return pd.DataFrame(
        {
            "shared labels t": vals,
            "fraction of pairs": (cnt / cnt.sum()).round(3),
            "S (binary)": (vals > 0).astype(int),
            "w = t / c (Eq. 3.3)": (vals / c).round(3),
            "logit of w": np.where(vals > 0, np.log(np.maximum(vals / c, 1e-9) / (1 - vals / c)), -np.inf).round(2),
        }
    )


# ---------------------------------------------------------------------------------------------------------------
# §5 training


def hashing_config(p: Mapping[str, Any]) -> H.HashingConfig:
    """The full model's :class:`~xmr_lib.chapters.ch03.hashing.HashingConfig` from the notebook's parameters, at
    the ablation's code length ``ablation_bits``."""
    return H.HashingConfig(
        n_bits=p["ablation_bits"],
        common_dim=p["common_dim"],
        image_hidden=tuple(p["image_hidden"]),
        text_hidden=p["text_hidden"],
        text_multiscale=p["text_multiscale"],
        alpha=p["alpha"],
        beta=p["beta"],
        gamma=p["gamma"],
        eta=p["eta"],
        eps=p["eps"],
        balance_weight=p["balance_weight"],
        loss_reduction=p["loss_reduction"],
        pair_scope=p["pair_scope"],
        multilevel_norm=p["multilevel_norm"],
        quant_target=p["quant_target"],
        pairwise_sign=p["pairwise_sign"],
        entropy_mode=p["entropy_mode"],
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        lr_start=p["lr_start"],
        lr_end=p["lr_end"],
        image_trunk=p["image_trunk"],
        trunk_pretrained=not p["tiny"],
    )


class Trainer:
    """Trains and evaluates hashing runs on ``feats``: ``trainer(name, config, seed)`` → one ``HashingRun``
    (:func:`xmr_lib.chapters.ch03.crossmodal.run_hashing`), ``trainer.many(name, config, seeds)`` → one per seed,
    trained together as one batched network (:func:`~xmr_lib.chapters.ch03.crossmodal.run_hashing_many`; the same
    runs as one call per seed) unless ``batched=False``. Finished runs are stored in the checkpoint folder
    ``03_<dataset>`` and reloaded, not retrained, unless ``keep_model`` asks for the trained network.

    Attributes:
        runs: ``{(name, seed): HashingRun}`` of every call, in call order.
    """

    def __init__(self, feats: cm.CrossModalFeatures, dataset: str, device: str, batched: bool = True):
        self.feats, self.device, self.batched = feats, device, batched
        self.ckpt = checkpoint.Checkpoint(f"03_{dataset}")
        self.runs: dict[tuple[str, int], Any] = {}

    def __call__(self, name: str, cfg: H.HashingConfig, seed: int, keep_model: bool = False):
        r = cm.run_hashing(
            self.feats, cfg, seed=seed, name=name, device=self.device, checkpoint=self.ckpt, keep_model=keep_model
        )
        self.runs[(name, seed)] = r
        return r

    def many(self, name: str, cfg: H.HashingConfig, seeds: Sequence[int], keep_model: bool = False) -> list:
        """One run per seed of ``seeds`` (batched unless ``self.batched`` is False or the image branch fine-tunes a
        trunk, which the batched network does not hold)."""
        if not self.batched or cfg.image_trunk != "none":
            return [self(name, cfg, s, keep_model) for s in seeds]
        rs = cm.run_hashing_many(
            self.feats, cfg, seeds, name=name, device=self.device, checkpoint=self.ckpt, keep_model=keep_model
        )
        for s, r in zip(seeds, rs):
            self.runs[(name, s)] = r
        return rs


def _many(trainer: Callable, name: str, cfg: H.HashingConfig, seeds: Sequence[int]) -> list:
    """``trainer.many(name, cfg, seeds)`` when the trainer has it, else one ``trainer(name, cfg, seed)`` per seed."""
    many = getattr(trainer, "many", None)
    return many(name, cfg, seeds) if many is not None else [trainer(name, cfg, s) for s in seeds]


def speed_metrics(r, device: str) -> dict[str, Any]:
    """``speed/…`` metrics of one run: training pairs per second, the device and the run's seconds."""
    return {"pairs_per_s": r.pairs_per_second, "device": device, "seconds_per_run": r.seconds}


def training_panels(hist: pd.DataFrame, cfg: H.HashingConfig) -> list[tuple[str, dict, dict]]:
    """The four panels of the training curves of one run (``hist`` = ``pd.DataFrame(run.history)``), each
    ``(title, curves, keyword arguments of viz.metric_curves)``: the weighted loss terms of the image pass and of
    the text pass, the domain predictors' entropy and accuracy, and the per-term gradient norms on F."""
    w = cfg.weights()
    panels = []
    for mod in ("image", "text"):
        curves = {
            f"{t} ×{w[TERM_WEIGHT[t]]:g}": (hist["epoch"], hist[f"{mod}/{t}"] * w[TERM_WEIGHT[t]])
            for t in ("pairs", "quant", "label", "multilevel", "domain", "balance")
            if f"{mod}/{t}" in hist
        }
        curves["total"] = (hist["epoch"], hist[f"{mod}/total"])
        panels.append((f"{mod} pass", curves, {"xlabel": "epoch", "ylabel": "weighted term (normalised)"}))
    panels.append(
        (
            "domain predictors",
            {k: (hist["epoch"], hist[k]) for k in hist if k.startswith("D_")},
            {"xlabel": "epoch", "ylabel": "bits / accuracy"},
        )
    )
    grads = {
        k.split("/")[-1]: (hist.dropna(subset=[k])["epoch"], hist[k].dropna())
        for k in hist
        if k.startswith("image/grad_F/")
    }
    panels.append(
        ("which term steers F (image pass)", grads, {"xlabel": "epoch", "ylabel": "‖∂ term / ∂F‖", "logy": True})
    )
    return panels


def training_metrics(hist: pd.DataFrame) -> dict[str, float]:
    """``training/…`` metrics of one run: the domain predictors' final entropy and accuracy, and the image pass's
    pairwise term at the first and last epoch."""
    last = lambda k: hist[k].iloc[-1]
    return {
        "seed0_D_real_entropy_bits": last("D_real/entropy_bits"),
        "D_real_accuracy": last("D_real/accuracy"),
        "D_binary_entropy_bits": last("D_binary/entropy_bits"),
        "D_binary_accuracy": last("D_binary/accuracy"),
        "image_pairs_first": hist["image/pairs"].iloc[0],
        "image_pairs_last": last("image/pairs"),
    }


# ---------------------------------------------------------------------------------------------------------------
# §6 ablation (Table 3.3)


def train_ablation(trainer: Callable, cfg: H.HashingConfig, seeds: Sequence[int]) -> dict[str, list]:
    """Every configuration of Table 3.3 (``H.ABLATIONS``: Baseline1 … Full) trained from ``cfg`` at every seed:
    ``{name: [HashingRun per seed]}``."""
    return {name: _many(trainer, name, H.ablation_config(cfg, name), seeds) for name in H.ABLATIONS}


def _per_seed(rs: Sequence) -> dict[str, list[float]]:
    """The per-seed numbers of a list of runs that the ablation records."""
    return {
        "i2t": [r.map_i2t for r in rs],
        "t2i": [r.map_t2i for r in rs],
        "ndcg_i2t": [r.metrics["i2t"]["NDCG@100"] for r in rs],
        "ndcg_t2i": [r.metrics["t2i"]["NDCG@100"] for r in rs],
        "probe_codes": [r.metrics["probe"]["soft"] for r in rs],
        "probe_features": [r.metrics["probe"]["features"] for r in rs],
    }


def ablation_metrics(abl: Mapping[str, Sequence], dataset: str) -> dict[str, list[float]]:
    """``ablation/<name>/<key>`` (one value per seed) and the same under ``ablation/<dataset>/<name>/<key>``, for
    the mAP and NDCG@100 of both directions and the fresh modality probe on codes and on features."""
    out = {}
    for name, rs in abl.items():
        for key, vals in _per_seed(rs).items():
            out[f"ablation/{name}/{key}"] = vals
            out[f"ablation/{dataset}/{name}/{key}"] = vals
    return out


def chance_map(feats: cm.CrossModalFeatures) -> float:
    """The mAP of a random ranking: the fraction of (query, retrieval item) pairs that share a label."""
    q, r = feats.split["query"], feats.split["retrieval"]
    return float((cm.shared_label_counts(feats.labels[q], feats.labels[r]) > 0).mean())


def bit_balance(r) -> np.ndarray:
    """Per bit, the fraction of +1 in a run's retrieval codes of both modalities: (K,)."""
    return H.bit_balance(np.concatenate([r.codes["db_image"], r.codes["db_text"]]))


def min_balance(r) -> float:
    """The least balanced bit of a run's retrieval codes: min over bits of min(p, 1 − p); 0 = a constant bit."""
    b = bit_balance(r)
    return float(np.minimum(b, 1 - b).min())


def constant_bits(r, tol: float = 0.01) -> int:
    """How many bits of a run's retrieval codes take one value on all but a fraction ``tol`` of the items."""
    b = bit_balance(r)
    return int((np.minimum(b, 1 - b) < tol).sum())


def sanity_metrics(abl: Mapping[str, Sequence], chance: float) -> dict[str, Any]:
    """The sanity checks of the ablation: chance mAP, how far the worst and the average mAP are above it, the
    full model's least balanced bit per seed, and its domain predictor's final entropy and accuracy per seed."""
    maps = [m for rs in abl.values() for r in rs for m in (r.map_i2t, r.map_t2i)]
    full = abl["Full"]
    return {
        "sanity/chance_map": chance,
        "sanity/min_map_over_chance": min(maps) - chance,
        "sanity/mean_map_over_chance": float(np.mean(maps)) - chance,
        "sanity/full_min_bit_balance": [min_balance(r) for r in full],
        "training/D_real_entropy_bits": [r.history[-1]["D_real/entropy_bits"] for r in full],
        "training/D_real_accuracy": [r.history[-1]["D_real/accuracy"] for r in full],
    }


def _mean_std(v: Sequence[float]) -> str:
    return f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}"


def ablation_table(abl: Mapping[str, Sequence], paper: Mapping[str, tuple[float, float]]) -> pd.DataFrame:
    """Table 3.3 beside ours: mean ± std over seeds of mAP, the mean NDCG@100 and probe accuracies, and the
    paper's I→T / T→I mAP (``paper[name]``). One row per configuration."""
    rows = []
    for name, rs in abl.items():
        v = _per_seed(rs)
        rows.append(
            {
                "configuration": name,
                "I→T mAP": _mean_std(v["i2t"]),
                "T→I mAP": _mean_std(v["t2i"]),
                "I→T NDCG@100": f"{np.mean(v['ndcg_i2t']):.3f}",
                "T→I NDCG@100": f"{np.mean(v['ndcg_t2i']):.3f}",
                "paper I→T": paper[name][0],
                "paper T→I": paper[name][1],
                "probe acc. F/G": f"{np.mean(v['probe_features']):.2f}",
                "probe acc. codes": f"{np.mean(v['probe_codes']):.2f}",
            }
        )
    return pd.DataFrame(rows).set_index("configuration")


def per_seed_table(abl: Mapping[str, Sequence], seeds: Sequence[int]) -> pd.DataFrame:
    """mAP of every configuration and direction (rows) at every seed (columns)."""
    return pd.DataFrame(
        {f"{n} {t}": [getattr(r, f"map_{t}") for r in rs] for n, rs in abl.items() for t in TASKS},
        index=[f"seed {s}" for s in seeds],
    ).T


def plot_hash_lookup(abl: Mapping[str, Sequence], bits: int):
    """Fig. 3.6: hash-lookup precision–recall of seed 0 of every configuration, both directions, and the top-N
    precision of I→T. Returns the Figure."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for task, ax in zip(TASKS, axes[:2]):
        for name, rs in abl.items():
            pr = rs[0].metrics[task]["pr"]
            ax.plot(pr["recall"], pr["precision"], marker=".", label=name)
        ax.set(xlabel="recall", ylabel="precision", title=f"hash lookup PR, {_task_name(task)}, {bits} bits (Fig. 3.6)")
        ax.legend(fontsize=9)
    for name, rs in abl.items():
        pn = rs[0].metrics["i2t"]["P@N"]
        axes[2].plot(list(pn), list(pn.values()), marker="o", label=f"{name} I→T")
    axes[2].set(xlabel="N", ylabel="precision@N", title="top-N precision")
    axes[2].legend(fontsize=9)
    fig.tight_layout()
    return fig


def train_ablation_reductions(
    trainer: Callable,
    cfg: H.HashingConfig,
    abl: Mapping[str, Sequence],
    reductions: Sequence[str],
    seeds: Sequence[int],
) -> dict[str, dict[str, list]]:
    """The ablation of Table 3.3 under every loss normalisation of ``reductions`` (``"dcmh"`` / ``"mean"``, see
    ``HashingConfig.loss_reduction``): ``{reduction: {configuration: [HashingRun per seed]}}``. The one equal to
    ``cfg.loss_reduction`` is ``abl`` (§6's runs, not retrained); the others are trained as ``<name>@<reduction>``."""
    out = {}
    for red in dict.fromkeys(reductions):
        if red == cfg.loss_reduction:
            out[red] = dict(abl)
        else:
            c = replace(cfg, loss_reduction=red)
            out[red] = {n: _many(trainer, f"{n}@{red}", H.ablation_config(c, n), seeds) for n in H.ABLATIONS}
    return out


def reduction_metrics(by_red: Mapping[str, Mapping[str, Sequence]], default: str) -> dict[str, list[float]]:
    """``ablation_<reduction>/<name>/<key>`` (one value per seed) for every normalisation but ``default`` (whose
    numbers are §6's ``ablation/<name>/<key>``)."""
    return {
        f"ablation_{red}/{name}/{key}": vals
        for red, abl in by_red.items()
        if red != default
        for name, rs in abl.items()
        for key, vals in _per_seed(rs).items()
    }


def reduction_table(
    by_red: Mapping[str, Mapping[str, Sequence]], paper: Mapping[str, tuple[float, float]]
) -> pd.DataFrame:
    """Table 3.3 under each loss normalisation side by side: mean ± std mAP per configuration and direction, the
    step from the previous configuration (mean over seeds), and the paper's mAP."""
    cols = {}
    for red, abl in by_red.items():
        for task in TASKS:
            cols[(red, f"{_task_name(task)} mAP")] = {n: _mean_std(_per_seed(rs)[task]) for n, rs in abl.items()}
        for task in TASKS:
            step, prev = {}, None
            for n, rs in abl.items():
                m = float(np.mean(_per_seed(rs)[task]))
                step[n] = "" if prev is None else f"{m - prev:+.3f}"
                prev = m
            cols[(red, f"{_task_name(task)} step")] = step
    for i, task in enumerate(TASKS):
        cols[("paper", f"{_task_name(task)} mAP")] = {n: paper[n][i] for n in next(iter(by_red.values()))}
    df = pd.DataFrame(cols)
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["loss_reduction", ""])
    df.index.name = "configuration"
    return df


# ---------------------------------------------------------------------------------------------------------------
# Table 3.2: code lengths


def train_code_lengths(
    trainer: Callable, cfg: H.HashingConfig, abl: Mapping[str, Sequence], bits: Sequence[int], seeds: Sequence[int]
) -> dict[tuple[str, int], list[float]]:
    """The full model at each code length of ``bits`` and each of ``seeds`` (the ablation's Full runs are reused
    at ``cfg.n_bits``): ``{(task, bits): [mAP per seed]}``."""
    out = {}
    for b in bits:
        if b == cfg.n_bits:
            rs = abl["Full"][: len(seeds)]
        else:
            rs = _many(trainer, f"Full_{b}bits", replace(cfg, n_bits=b), seeds)
        for task in TASKS:
            out[(task, b)] = [r.metrics[task]["mAP"] for r in rs]
    return out


def code_length_table(
    maps: Mapping[tuple[str, int], Sequence[float]],
    dataset: str,
    paper: Mapping[tuple[str, str], Mapping[tuple[str, int], float]],
) -> pd.DataFrame:
    """Table 3.2 (DCMH, SSAH and the chapter's method on MIRFlickr-25K and NUS-WIDE) with this run's mean mAP
    per code length as an extra row per direction."""
    table = []
    for task in TASKS:
        for ds in ("mirflickr25k", "nuswide"):
            for method in ("DCMH", "SSAH", "Ours"):
                table.append(
                    {
                        "task": _task_name(task),
                        "data": ds,
                        "method": f"{method} (paper)",
                        **{f"{b} bits": paper[(task, method)][(ds, b)] for b in (16, 32, 64)},
                    }
                )
        table.append(
            {
                "task": _task_name(task),
                "data": dataset,
                "method": "ours (this run)",
                **{f"{b} bits": round(float(np.mean(v)), 3) for (t, b), v in maps.items() if t == task},
            }
        )
    return pd.DataFrame(table).set_index(["task", "data", "method"])


def dcmh_config(p: Mapping[str, Any], n_bits: int) -> D.DCMHConfig:
    """DCMH's :class:`~xmr_lib.chapters.ch03.dcmh.DCMHConfig` at ``n_bits`` with the notebook's optimisation
    (``epochs``, ``batch_size``, ``lr_start → lr_end``) and the chapter's text width ``text_hidden`` (DCMH: 8192;
    see ``PAPER_SETTINGS``)."""
    return D.DCMHConfig(
        n_bits=n_bits,
        text_hidden=p["text_hidden"],
        image_trunk=p["image_trunk"],
        trunk_pretrained=not p["tiny"],
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        lr_start=p["lr_start"],
        lr_end=p["lr_end"],
    )


def _train_baseline(trainer, name: str, run_many, config_of, bits: Sequence[int], seeds: Sequence[int]) -> dict:
    """A baseline's ``run_many(features, config, seeds, name=, device=, checkpoint=)`` at each code length of
    ``bits`` (config ``config_of(bits)``), its runs stored in the trainer as ``(f"{name}_{bits}bits", seed)``:
    ``{bits: [HashingRun per seed]}``."""
    out = {}
    for b in bits:
        tag = f"{name}_{b}bits"
        rs = run_many(trainer.feats, config_of(b), seeds, name=tag, device=trainer.device, checkpoint=trainer.ckpt)
        for s, r in zip(seeds, rs):
            trainer.runs[(tag, s)] = r
        out[b] = rs
    return out


def train_dcmh(trainer, p: Mapping[str, Any], bits: Sequence[int], seeds: Sequence[int]) -> dict[int, list]:
    """DCMH (:mod:`xmr_lib.chapters.ch03.dcmh`) at each code length of ``bits`` and each of ``seeds``, on the
    trainer's features, stored in its checkpoint: ``{bits: [HashingRun per seed]}``."""
    return _train_baseline(trainer, "DCMH", D.run_dcmh_many, lambda b: dcmh_config(p, b), bits, seeds)


def dcmh_metrics(dcmh_runs: Mapping[int, Sequence], dataset: str) -> dict[str, list[float]]:
    """``dcmh/<dataset>/<task>/<bits>``: DCMH's mAP per seed (paired with ``map/<dataset>/<task>/<bits>``)."""
    return {f"dcmh/{dataset}/{t}/{b}": [r.metrics[t]["mAP"] for r in rs] for b, rs in dcmh_runs.items() for t in TASKS}


def ssah_config(p: Mapping[str, Any], n_bits: int) -> SS.SSAHConfig:
    """SSAH's :class:`~xmr_lib.chapters.ch03.ssah.SSAHConfig` at ``n_bits`` on the chapter's branches
    (``common_dim``, ``image_hidden``, ``text_hidden``, ``text_multiscale``, ``image_trunk``), LabNet's width
    ``ssah_label_hidden`` and the notebook's optimisation (``epochs``, ``batch_size``, ``lr_start → lr_end``)."""
    return SS.SSAHConfig(
        n_bits=n_bits,
        common_dim=p["common_dim"],
        label_hidden=p["ssah_label_hidden"],
        image_hidden=tuple(p["image_hidden"]),
        text_hidden=p["text_hidden"],
        text_multiscale=p["text_multiscale"],
        image_trunk=p["image_trunk"],
        trunk_pretrained=not p["tiny"],
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        lr_start=p["lr_start"],
        lr_end=p["lr_end"],
    )


def train_ssah(trainer, p: Mapping[str, Any], bits: Sequence[int], seeds: Sequence[int]) -> dict[int, list]:
    """SSAH (:mod:`xmr_lib.chapters.ch03.ssah`) at each code length of ``bits`` and each of ``seeds``, on the
    trainer's features, stored in its checkpoint: ``{bits: [HashingRun per seed]}``. torch's global random state
    is left as it was found, so the steps after it compute what they computed without it."""
    with torch.random.fork_rng(devices=[]):
        return _train_baseline(trainer, "SSAH", SS.run_ssah_many, lambda b: ssah_config(p, b), bits, seeds)


def ssah_metrics(ssah_runs: Mapping[int, Sequence], dataset: str) -> dict[str, list[float]]:
    """``ssah/<dataset>/<task>/<bits>``: SSAH's mAP per seed (paired with ``map/<dataset>/<task>/<bits>``)."""
    return {f"ssah/{dataset}/{t}/{b}": [r.metrics[t]["mAP"] for r in rs] for b, rs in ssah_runs.items() for t in TASKS}


def baselines_table(
    maps: Mapping[tuple[str, int], Sequence[float]],
    baselines: Mapping[str, Mapping[int, Sequence]],
    dataset: str,
    paper: Mapping[tuple[str, str], Mapping[tuple[str, int], float]],
) -> pd.DataFrame:
    """Table 3.2's baseline rows and ours: this run's mean ± std mAP per code length (ours: ``maps``; each
    baseline ``{method: {bits: [runs]}}``, e.g. ``{"DCMH": …, "SSAH": …}``, at the code lengths it was trained at),
    the mean gap ours − baseline, and the paper's MIRFlickr-25K numbers."""
    rows = []
    for task in TASKS:
        bits = sorted(b for t, b in maps if t == task)
        ours = {b: maps[(task, b)] for b in bits}
        name = _task_name(task)
        rows.append({"task": name, "method": f"ours ({dataset})", **{f"{b} bits": _mean_std(ours[b]) for b in bits}})
        for method, runs_ in baselines.items():
            got = {b: [r.metrics[task]["mAP"] for r in runs_[b]] for b in bits if b in runs_}
            rows.append(
                {"task": name, "method": f"{method} ({dataset})", **{f"{b} bits": _mean_std(v) for b, v in got.items()}}
            )
            rows.append(
                {
                    "task": name,
                    "method": f"ours − {method}",
                    **{f"{b} bits": f"{np.mean(ours[b]) - np.mean(v):+.3f}" for b, v in got.items()},
                }
            )
        for method in (*baselines, "Ours"):
            vals = paper[(task, method)]
            rows.append(
                {
                    "task": name,
                    "method": f"{method} (paper, MIRFlickr-25K)",
                    **{f"{b} bits": vals.get(("mirflickr25k", b), np.nan) for b in bits},
                }
            )
    return pd.DataFrame(rows).set_index(["task", "method"])


def dcmh_table(
    maps: Mapping[tuple[str, int], Sequence[float]],
    dcmh_runs: Mapping[int, Sequence],
    dataset: str,
    paper: Mapping[tuple[str, str], Mapping[tuple[str, int], float]],
) -> pd.DataFrame:
    """Table 3.2's DCMH and Ours rows (:func:`baselines_table` with DCMH alone)."""
    return baselines_table(maps, {"DCMH": dcmh_runs}, dataset, paper)


def plot_baselines(
    maps: Mapping[tuple[str, int], Sequence[float]],
    baselines: Mapping[str, Mapping[int, Sequence]],
    ours_pr: Mapping[str, Any] | None = None,
):
    """mAP against the code length, ours vs each baseline of ``baselines`` (``{method: {bits: [runs]}}``), both
    directions (Table 3.2 as a plot; mean and the seeds' range), and — given ``ours_pr`` (a run of ours at the
    smallest code length of the first baseline) — Fig. 3.5's hash-lookup precision–recall of I→T and T→I for ours
    and every baseline trained at that length (seed 0). Returns the Figure."""
    n_panels = 2 + (2 if ours_pr is not None else 0)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.5))
    markers = "sD^v"
    for task, ax in zip(TASKS, axes[:2]):
        series = [("ours", {b: maps[(task, b)] for t, b in maps if t == task}, "o")]
        for i, (method, runs_) in enumerate(baselines.items()):
            series.append((method, {b: [r.metrics[task]["mAP"] for r in rs] for b, rs in runs_.items()}, markers[i]))
        shown = sorted({b for t, b in maps if t == task} & {b for rs in baselines.values() for b in rs})
        for label, by_bits, m in series:
            bits = [b for b in shown if b in by_bits]
            vals = [by_bits[b] for b in bits]
            mean = [np.mean(v) for v in vals]
            ax.errorbar(
                bits,
                mean,
                yerr=[np.subtract(mean, [min(v) for v in vals]), np.subtract([max(v) for v in vals], mean)],
                marker=m,
                capsize=3,
                label=label,
            )
        ax.set(xscale="log", xlabel="bits", ylabel="mAP", title=f"{_task_name(task)} (Table 3.2)")
        ax.minorticks_off()  # one labelled tick per code length
        ax.set_xticks(shown, [str(b) for b in shown])
        ax.legend(fontsize=9)
    if ours_pr is not None:
        b0 = min(next(iter(baselines.values())))
        for task, ax in zip(TASKS, axes[2:]):
            curves = [("ours", ours_pr)] + [(m, rs[b0][0]) for m, rs in baselines.items() if b0 in rs]
            for label, run in curves:
                pr = run.metrics[task]["pr"]
                ax.plot(pr["recall"], pr["precision"], marker=".", label=label)
            ax.set(xlabel="recall", ylabel="precision", title=f"hash lookup, {_task_name(task)}, {b0} bits (Fig. 3.5)")
            ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def plot_dcmh_comparison(
    maps: Mapping[tuple[str, int], Sequence[float]],
    dcmh_runs: Mapping[int, Sequence],
    ours_pr: Mapping[str, Any] | None = None,
):
    """:func:`plot_baselines` with DCMH alone. Returns the Figure."""
    return plot_baselines(maps, {"DCMH": dcmh_runs}, ours_pr)


def ours_run_at(trainer, abl: Mapping[str, Sequence], cfg: H.HashingConfig, bits: int, seed: int):
    """The full model's run at ``bits`` and ``seed`` that :func:`train_code_lengths` trained (the ablation's Full
    run at ``cfg.n_bits``)."""
    if bits == cfg.n_bits:
        return next(r for r in abl["Full"] if r.seed == seed)
    return trainer.runs[(f"Full_{bits}bits", seed)]


def train_dim_sweep(
    trainer: Callable,
    cfg: H.HashingConfig,
    abl: Mapping[str, Sequence],
    dims: Sequence[int],
    seeds: Sequence[int],
    paper: Mapping[int, tuple[float, float]],
) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """Table 3.1: the full model at every common dimension N of ``dims`` (``cfg.common_dim`` reuses the ablation's
    Full runs), at ``seeds``, beside the paper's mAP (``paper[N]`` = (I→T, T→I), MIRFlickr-25K).

    Returns:
        ``(table, metrics)``: one row per N (mean mAP, seeds, the paper's), and ``common_dim/<N>/i2t|t2i`` → mAP
        per seed.
    """
    rows, metrics = [], {}
    for n_dim in dims:
        if n_dim == cfg.common_dim:
            rs = list(abl["Full"][: len(seeds)])
        else:
            rs = _many(trainer, f"common_dim_{n_dim}", replace(cfg, common_dim=n_dim), seeds)
        metrics |= sweep_metrics(f"common_dim/{n_dim}", rs)
        pi, pt = paper.get(n_dim, (np.nan, np.nan))
        rows.append(
            {
                "N": n_dim,
                "I→T mAP": _mean_std([r.map_i2t for r in rs]),
                "T→I mAP": _mean_std([r.map_t2i for r in rs]),
                "seeds": len(rs),
                "paper I→T": pi,
                "paper T→I": pt,
            }
        )
    table = pd.DataFrame(rows, columns=["N", "I→T mAP", "T→I mAP", "seeds", "paper I→T", "paper T→I"])
    return table.set_index("N"), metrics


# ---------------------------------------------------------------------------------------------------------------
# §7 α and η sweeps (Fig. 3.4)

GRAD_RATIO = "‖∂αL_d/∂F‖ / ‖∂L_pairs/∂F‖ (seed 0)"


def sweep_row(scope: str, alpha: float, rs: Sequence) -> dict[str, Any]:
    """One row of the α sweep: mean mAP of the runs ``rs`` (one per seed), and from seed 0's history the ratio of
    the gradient norms the entropy term and the pairwise term send into F, and 𝒟's final accuracy."""
    g = pd.DataFrame(rs[0].history)
    gd = g.get("image/grad_F/domain", pd.Series([0.0])).mean()
    gp = g["image/grad_F/pairs"].mean()
    return {
        "pair scope": scope,
        "α": alpha,
        "I→T": np.mean([r.map_i2t for r in rs]),
        "T→I": np.mean([r.map_t2i for r in rs]),
        "seeds": len(rs),
        GRAD_RATIO: gd / gp,
        "D_real acc. (seed 0)": g.get("D_real/accuracy", pd.Series([np.nan])).iloc[-1],
    }


def sweep_metrics(prefix: str, rs: Sequence) -> dict[str, list[float]]:
    """``<prefix>/i2t`` and ``<prefix>/t2i``: the mAP of each run of ``rs`` (one per seed)."""
    return {f"{prefix}/i2t": [r.map_i2t for r in rs], f"{prefix}/t2i": [r.map_t2i for r in rs]}


def train_sweeps(
    trainer: Callable,
    cfg: H.HashingConfig,
    abl: Mapping[str, Sequence],
    seeds: Sequence[int],
    alphas: Sequence[float],
    in_batch_alphas: Sequence[float],
    etas: Sequence[float],
) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """Fig. 3.4's sweeps at ``seeds``: α over ``alphas`` ∪ {cfg.alpha} at cfg's pair scope (α = 0 is Baseline3,
    α = cfg.alpha is Full — both reused from the ablation), α over ``in_batch_alphas`` with in-batch pairs, and η
    over ``etas``.

    Returns:
        ``(table, metrics)``: one row per setting (see :func:`sweep_row`), and ``alpha/<α>/…``,
        ``in_batch_alpha/<α>/…``, ``eta/<η>/…`` → mAP per seed.
    """
    n = len(seeds)
    rows, metrics = [sweep_row(cfg.pair_scope, 0.0, abl["Baseline3"][:n])], {}
    for a in sorted(set(alphas) | {cfg.alpha}):
        rs = abl["Full"][:n] if a == cfg.alpha else _many(trainer, f"alpha_{a:g}", replace(cfg, alpha=a), seeds)
        rows.append(sweep_row(cfg.pair_scope, a, rs))
        metrics |= sweep_metrics(f"alpha/{a:g}", rs)
    for a in in_batch_alphas:
        rs = _many(trainer, f"inbatch_alpha_{a:g}", replace(cfg, pair_scope="in_batch", alpha=a), seeds)
        rows.append(sweep_row("in_batch", a, rs))
        metrics |= sweep_metrics(f"in_batch_alpha/{a:g}", rs)
    for e in etas:
        rs = _many(trainer, f"eta_{e:g}", replace(cfg, eta=e), seeds)
        metrics |= sweep_metrics(f"eta/{e:g}", rs)
        rows.append(
            {
                "pair scope": cfg.pair_scope,
                "α": cfg.alpha,
                "η": e,
                "I→T": np.mean([r.map_i2t for r in rs]),
                "T→I": np.mean([r.map_t2i for r in rs]),
                "seeds": len(rs),
            }
        )
    return pd.DataFrame(rows), metrics


def plot_alpha_sweep(sweep: pd.DataFrame, chance: float, batch_size: int, n_train: int):
    """The α sweep three ways: mAP against α per pair scope (Fig. 3.4), the gradient-norm ratio of the entropy
    and pairwise terms, and mAP against the per-sample weight α / n_partners (n_partners = ``batch_size``
    in-batch, ``n_train`` over DCMH's buffer), which puts both scopes on one axis. Returns the Figure."""
    ab = sweep[sweep["η"].isna()] if "η" in sweep else sweep
    ab = ab.assign(n_partners=np.where(ab["pair scope"] == "in_batch", batch_size, n_train))
    ab = ab.assign(effective=ab["α"] / ab["n_partners"])
    fig, ax = plt.subplots(1, 3, figsize=(16, 3.6))
    for scope, g in ab.groupby("pair scope"):
        x = g["α"].replace(0, 0.1)
        ax[0].plot(x, g["I→T"], marker="o", label=f"{scope} I→T")
        ax[0].plot(x, g["T→I"], marker="s", ls="--", label=f"{scope} T→I")
        gg = g[g["α"] > 0]
        ax[1].plot(gg["α"], gg[GRAD_RATIO], marker="o", label=scope)
        ax[2].scatter(gg["effective"], gg["I→T"], s=40, label=f"{scope} I→T")
    for a in ax[[0, 2]]:
        a.axhline(chance, c="grey", ls=":", label="chance")
    ax[0].set(xscale="log", xlabel="α (0 plotted at 0.1)", ylabel="mAP", title="α sensitivity (Fig. 3.4)")
    ax[1].set(
        xscale="log",
        yscale="log",
        xlabel="α",
        ylabel="ratio of gradient norms on F (seed 0)",
        title="entropy term vs pairwise term",
    )
    ax[2].set(
        xscale="log", xlabel="α / n_partners (per-sample weight)", ylabel="I→T mAP", title="one axis for both scopes"
    )
    for a in ax:
        a.legend(fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------------
# §8 the printed formulas, trained as printed


def train_printed_formulas(
    trainer: Callable,
    cfg: H.HashingConfig,
    abl: Mapping[str, Sequence],
    hist: pd.DataFrame,
    which: Sequence[str],
    seeds: Sequence[int],
    sweep_seeds: Sequence[int],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Eq. 3.7 without the balance term (``"printed_eq37"`` in ``which``, at ``sweep_seeds``) and Eq. 3.2 with θ_d
    inside the same min (``"literal_entropy"``, at ``seeds[0]``), beside the full model (``abl["Full"]``, whose
    seed-0 history is ``hist``).

    Returns:
        ``(table, metrics)``: one row per run (mAP, least balanced bit, constant bits, 𝒟's entropy), and the
        ``printed_eq37/…`` and ``literal_entropy/…`` metrics.
    """
    rows, metrics = [], {}
    if "printed_eq37" in which:
        rs = _many(trainer, "printed_eq37", replace(cfg, balance_weight=0.0), sweep_seeds)
        metrics |= {
            "printed_eq37/min_bit_balance": [min_balance(x) for x in rs],
            "printed_eq37/i2t": [x.map_i2t for x in rs],
            "printed_eq37/t2i": [x.map_t2i for x in rs],
            "printed_eq37/seed0_constant_bits": constant_bits(rs[0]),
        }
        rows.append(
            {
                "run": "Eq. 3.7 as printed (no balance term), seed 0",
                "I→T": rs[0].map_i2t,
                "T→I": rs[0].map_t2i,
                "min bit balance": min_balance(rs[0]),
                "constant bits": constant_bits(rs[0]),
            }
        )
    full = abl["Full"][0]
    rows.append(
        {
            "run": "with DCMH's balance term (Full), seed 0",
            "I→T": full.map_i2t,
            "T→I": full.map_t2i,
            "min bit balance": min_balance(full),
            "constant bits": constant_bits(full),
        }
    )
    if "literal_entropy" in which:
        r = trainer("literal_entropy", replace(cfg, entropy_mode="literal"), seeds[0])
        d_entropy = pd.DataFrame(r.history)["D_real/entropy_bits"].iloc[-1]
        metrics |= {
            "literal_entropy/D_real_entropy_bits": d_entropy,
            "literal_entropy/i2t": r.map_i2t,
            "literal_entropy/t2i": r.map_t2i,
        }
        rows.append(
            {
                "run": "Eq. 3.2 as printed (θ_d in the min)",
                "I→T": r.map_i2t,
                "T→I": r.map_t2i,
                "D entropy on F/G (bits)": d_entropy,
            }
        )
    rows.append({"run": "adversarial D (Full)", "D entropy on F/G (bits)": hist["D_real/entropy_bits"].iloc[-1]})
    return pd.DataFrame(rows).set_index("run"), metrics


# ---------------------------------------------------------------------------------------------------------------
# §9 retrieval examples


def item_text(feats: cm.CrossModalFeatures, j: int) -> str:
    """What to show for item ``j`` without its image: its caption, else its labels."""
    if feats.texts:
        return feats.texts[j]
    return "labels: " + (", ".join(n for n, v in zip(feats.label_names, feats.labels[j]) if v) or "none")


def hamming_ranking(
    codes: Mapping[str, np.ndarray], feats: cm.CrossModalFeatures, query: int, direction: str, k: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Hamming top-``k`` of query ``query`` (a position in the query set) in ``direction`` (``"T→I"``: its
    caption's code against the retrieval images'; ``"I→T"``: its image's against the retrieval captions').

    Returns:
        ``(distances (k,), retrieval-set positions (k,), shared label counts (k,))``.
    """
    q_idx, r_idx = feats.split["query"], feats.split["retrieval"]
    qk, dk = ("query_text", "db_image") if direction == "T→I" else ("query_image", "db_text")
    dist, ids = cm.hamming_neighbours(codes[qk][[query]], codes[dk], k)
    shares = cm.shared_label_counts(feats.labels[q_idx[[query]]], feats.labels[r_idx[ids[0]]])[0]
    return dist[0], ids[0], shares


class RankingDrawer:
    """``drawer(query, configuration, direction)`` → a Figure of the Hamming top-``k`` of one query under one
    configuration of the ablation (seed 0's codes; nothing is trained): an image grid for T→I when the dataset
    has images, else a list of captions. Frames and ✓ / ✗ mark the protocol's relevance (a shared label).

    Args:
        abl: ``{configuration: [HashingRun per seed]}``. bits: the code length (for the title).
        ranked_grid, colours: :func:`xmr_lib.course.viz.ranked_grid` and ``viz.FRAME_COLOURS`` (the course
            layer sits above the chapters, so the notebook passes them in).
    """

    def __init__(
        self,
        abl: Mapping[str, Sequence],
        feats: cm.CrossModalFeatures,
        bits: int,
        ranked_grid: Callable,
        colours: Mapping[Any, str],
        k: int = 6,
    ):
        self.abl, self.feats, self.bits, self.k = abl, feats, bits, k
        self.ranked_grid, self.colours = ranked_grid, colours

    def __call__(self, query: int, configuration: str, direction: str):
        feats, e = self.feats, int(query)
        q_idx, r_idx = feats.split["query"], feats.split["retrieval"]
        dist, ids, shares = hamming_ranking(self.abl[configuration][0].codes, feats, e, direction, self.k)
        title = f"{configuration}, {direction}, {self.bits} bits — query {int(q_idx[e])}"
        if direction == "T→I" and feats.images is not None:
            return self.ranked_grid(
                feats.images[q_idx[e]],
                [feats.images[r_idx[j]] for j in ids],
                status=["relevant" if t > 0 else "irrelevant" for t in shares],
                titles=[f"d={d}, shares {t}" for d, t in zip(dist, shares)],
                query_title="(its own image)",
                ax_size=1.9,
                suptitle=f"{title}\n“{feats.texts[q_idx[e]]}”" if feats.texts else title,
            )
        fig, ax = plt.subplots(figsize=(9, 0.45 * self.k + 1.2), layout="constrained")
        q_text = item_text(feats, q_idx[e])
        if direction == "I→T" and feats.texts:
            q_text = f"(the image of) “{q_text}”"
        ax.axis("off")
        ax.set_title(f"{title}\nquery: {q_text}", fontsize=10, loc="left")
        for rank, (d, j, t) in enumerate(zip(dist, ids, shares)):
            ax.text(
                0,
                1 - (rank + 0.5) / self.k,
                f"#{rank + 1}  d={d}  shares {t}  {'✓' if t > 0 else '✗'}   {item_text(feats, r_idx[j])}",
                fontsize=10,
                va="center",
                color=self.colours["relevant" if t > 0 else "irrelevant"],
                transform=ax.transAxes,
            )
        return fig


def i2t_examples_table(
    codes: Mapping[str, np.ndarray], feats: cm.CrossModalFeatures, queries: Sequence[int], k: int = 6
) -> pd.DataFrame:
    """The Hamming top-``k`` captions of the image of each query in ``queries`` (positions in the query set): one
    row per (query, rank) with the distance, the shared labels, the caption and ✓ / ✗ (a shared label)."""
    q_idx, r_idx = feats.split["query"], feats.split["retrieval"]
    rows = []
    for e in queries:
        dist, ids, shares = hamming_ranking(codes, feats, int(e), "I→T", k)
        for rank, (d, j, t) in enumerate(zip(dist, ids, shares), 1):
            rows.append(
                {
                    "query": int(q_idx[e]),
                    "query caption (not used)": feats.texts[q_idx[e]] if feats.texts else "",
                    "rank": rank,
                    "Hamming distance": int(d),
                    "shared labels": int(t),
                    "retrieved caption": feats.texts[r_idx[j]] if feats.texts else int(r_idx[j]),
                    "relevant": "✓" if t > 0 else "✗",
                }
            )
    return pd.DataFrame(rows).set_index(["query", "rank"])


# ---------------------------------------------------------------------------------------------------------------
# §10 codes before and after training


def untrained_model(feats: cm.CrossModalFeatures, cfg: H.HashingConfig, seed: int) -> H.CrossModalHashingModel:
    """The network ``train_cross_modal_hashing`` starts from at ``seed`` (same initialisation), in eval mode."""
    torch.manual_seed(seed)
    return H.CrossModalHashingModel(feats.image.shape[1], feats.text.shape[1], feats.labels.shape[1], cfg).eval()


def soft_codes(model, feats: cm.CrossModalFeatures, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The soft codes H (n, K) of the images and of the texts of the items ``idx``."""
    return (model.encode(feats.image[idx], "image", what="soft"), model.encode(feats.text[idx], "text", what="soft"))


def colour_labels(feats: cm.CrossModalFeatures, idx: np.ndarray) -> list[str]:
    """One label per item for colouring a map: its first label (the colour on ``shapes``), without the prefix."""
    return [feats.label_names[int(np.argmax(lab))].split(":")[-1] for lab in feats.labels[idx]]
