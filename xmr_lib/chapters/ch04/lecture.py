"""The steps notebook 04 (information theory meets adversarial learning, thesis chapter 4) calls: loading the
caption benchmark, the tables of the ablations (Tables 4.4, 4.5), the metrics they record, and the plots of the
training curves, the discriminator's outputs and the retrieval examples.

Every function returns what the notebook shows or records; none records a metric itself (recording belongs to
:mod:`xmr_lib.course.runs`, a layer above the chapters): a ``*_metrics`` function returns ``{key: value}`` for
``runs.record_many``. Plots here use matplotlib only; the notebook draws the maps and grids of
:mod:`xmr_lib.course.viz` from what these functions return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from xmr_lib.chapters.ch04 import adversarial as adv
from xmr_lib.chapters.ch04 import endtoend as e2e
from xmr_lib.data import shape_captions
from xmr_lib.encoders.features import image_features

#: the columns of the Table 4.4 view: R@1, R@10, the standard mAP and the chapter's "mAP", both directions
COLS = ["i2t/R@1", "i2t/R@10", "i2t/mAP", "i2t/thesis_mAP", "t2i/R@1", "t2i/R@10", "t2i/mAP", "t2i/thesis_mAP"]


@dataclass
class Benchmark:
    """A caption benchmark ready for training: the features of both splits, and the test captions and images to
    show (``test_images``: (n, H, W, 3) uint8, at most 200 for a real set)."""

    split: adv.CaptionSplit
    test_captions: list[str]
    test_images: np.ndarray
    vocab: list[str] | None = None  # end to end: the Bi-LSTM's vocabulary (the splits hold token ids)


def end_to_end(p: Mapping[str, Any]) -> bool:
    """Whether ``p`` trains the image trunk and the Bi-LSTM end to end (the thesis's setting, the full profile)
    rather than heads on frozen features. Raises ValueError for a mixed setting."""
    fine_tuned = p["image_backbone"] != "frozen_lite0"
    if fine_tuned != (p["text_encoder"] == "bilstm"):
        raise ValueError(
            f"image_backbone={p['image_backbone']!r}, text_encoder={p['text_encoder']!r}: a fine-tuned trunk goes "
            "with text_encoder='bilstm', image_backbone='frozen_lite0' with 'bow' or 'minilm'"
        )
    return fine_tuned


def engine(p: Mapping[str, Any]) -> Any:
    """The training engine of ``adv.run_configs``: None (frozen features) or the end-to-end one."""
    return e2e.ENGINE if end_to_end(p) else None


def load_benchmark(p: Mapping[str, Any]) -> Benchmark:
    """The caption benchmark the parameters ``p`` name (after the chapter's fallback rule ran in ``runs.params``:
    a full run without its real data reads ``dataset="shapes"`` here).

    ``"shapes"``: the offline shape-caption benchmark (``n_train_images + n_test_images`` easy-vqa images with
    ``captions_per_image`` captions each), frozen EfficientNet-Lite0 image features and ``text_encoder`` caption
    features, split by image (seed 0). A real set (``flickr30k``, ``coco``, ``flickr8k``): its Karpathy train and
    test splits from ``data_root``, image features cached per split (``cuhk_pedes``: a caption is relevant to every
    test image of its person, Table 4.2's protocol); needs ``text_encoder="minilm"`` (a
    bag-of-words vocabulary would differ between the splits).

    ``p`` needs ``dataset, data_root, n_train_images, n_test_images, captions_per_image, text_encoder, image_size,
    device``."""
    if end_to_end(p):
        if p["dataset"] == "shapes":
            raise ValueError(
                "dataset: the end-to-end path reads a Karpathy caption set (flickr30k, coco, flickr8k, cuhk_pedes)"
            )
        raw = e2e.load_raw_benchmark(
            p["dataset"], p["data_root"], p["n_train_images"], p["n_test_images"], p["image_size"]
        )
        return Benchmark(raw.split, raw.test_captions, raw.test_images, raw.vocab)
    if p["dataset"] == "shapes":
        bench = shape_captions.shape_caption_benchmark(
            p["n_train_images"] + p["n_test_images"], p["captions_per_image"], seed=0
        )
        xi = adv.shape_image_features(bench, size=p["image_size"], device=p["device"])
        xt = adv.caption_features(bench.captions, p["text_encoder"])
        split = adv.split_benchmark(xi, xt, bench.pair_image, p["n_train_images"], p["n_test_images"], seed=0)
        return Benchmark(split, [bench.captions[k] for k in split.test_caption_index], bench.images[split.test_index])
    if p["text_encoder"] == "bow":
        raise ValueError("text_encoder: use 'minilm' with real captions (a BoW vocabulary would differ per split)")
    parts = {}
    for part, n in (("train", p["n_train_images"]), ("test", p["n_test_images"])):
        paths, caps, pair = adv.karpathy_caption_benchmark(p["dataset"], p["data_root"], part, max_images=n)
        xi = image_features(
            paths=paths,
            size=p["image_size"],
            device=p["device"],
            cache_key={"dataset": p["dataset"], "split": part, "n": len(paths)},
        )
        parts[part] = (xi, adv.caption_features(caps, p["text_encoder"]), pair, paths, caps)
    (tri, trt, trp, _, _), (tei, tet, tep, test_paths, test_captions) = parts["train"], parts["test"]
    split = adv.CaptionSplit(tri, trt, trp, tei, tet, tep, np.arange(len(tei)), np.arange(len(tet)))
    split.test_image_label = e2e.karpathy_identities(p["dataset"], p["data_root"], "test", p["n_test_images"])
    images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((96, 96))) for f in test_paths[:200]])
    return Benchmark(split, test_captions, images)


def describe(split: adv.CaptionSplit) -> str:
    """One line: images, captions and feature sizes (or pixels and tokens, end to end) of both splits."""
    if split.train_image.ndim == 4:
        return (
            f"train: {len(split.train_image)} images, {len(split.train_text)} captions | "
            f"test: {len(split.test_image)} images, {len(split.test_text)} captions | "
            f"pixels {split.train_image.shape[-1]}², captions ≤ {split.train_text.shape[1]} token ids"
        )
    return (
        f"train: {len(split.train_image)} images, {len(split.train_text)} captions | "
        f"test: {len(split.test_image)} images, {len(split.test_text)} captions | "
        f"image features {split.train_image.shape[1]}-d, text features {split.train_text.shape[1]}-d"
    )


def captions_of(image: int, split: adv.CaptionSplit, test_captions: Sequence[str]) -> list[str]:
    """The test captions of test image ``image``."""
    return [c for c, i in zip(test_captions, split.test_pair) if i == image]


def common_space_config(p: Mapping[str, Any], data: Benchmark | None = None) -> adv.CommonSpaceConfig:
    """The full method's :class:`~xmr_lib.chapters.ch04.adversarial.CommonSpaceConfig` from the notebook's
    parameters (one learning rate for the heads, the Bi-LSTM and the discriminator; end to end also the trunk's
    ``lr_backbone``, the decay and the Bi-LSTM's sizes, its vocabulary from ``data``; ``tiny``: a random trunk)."""
    if end_to_end(p):
        if data is None or data.vocab is None:
            raise ValueError("data: the end-to-end configuration needs the benchmark (its vocabulary)")
        extra = dict(
            image_backbone=p["image_backbone"],
            pretrained=not p["tiny"],
            lr_backbone=p["lr_backbone"],
            lr_decay=p["lr_decay"],
            vocab_size=len(data.vocab),
            word_dim=p["word_dim"],
            text_hidden=p["text_hidden"],
        )
    else:
        extra = {}
    return adv.CommonSpaceConfig(
        **extra,
        dim=p["dim"],
        hidden=p["hidden"],
        lr=p["lr"],
        lr_d=p["lr"],
        k_steps=p["k_steps"],
        tau=p["tau"],
        margin=p["margin"],
        kl_target=p["kl_target"],
        di_form=p["di_form"],
        batch_size=p["batch_size"],
        epochs=p["epochs"],
    )


# ---------------------------------------------------------------------------------------------------------------
# §4 component analysis (Table 4.4)


def ablation_metrics(results: Mapping[str, Mapping[str, Any]], chance: float) -> dict[str, list[float]]:
    """``ablation/<configuration>/<metric>`` per seed for every metric of :func:`adv.run_configs`' results and
    the fresh probe's accuracy, and the full method's T→I R@1 over ``chance`` (R@1 of a random ranking, %)."""
    out = {}
    for name, r in results.items():
        for k, v in r["metrics"].items():
            out[f"ablation/{name}/{k}"] = [float(x) for x in v]
        out[f"ablation/{name}/probe_accuracy"] = [float(x) for x in r["probe"]]
    out["ablation/Full/t2i/R@1_over_chance"] = [x / chance for x in results["Full"]["metrics"]["t2i/R@1"]]
    return out


def mean_std(v: Sequence[float]) -> str:
    """``"mean ± std"`` with one decimal (the thesis prints percent with one decimal); the value alone for one
    seed."""
    return f"{np.mean(v):.1f} ± {np.std(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def ablation_table(results: Mapping[str, Mapping[str, Any]], paper: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Table 4.4 beside ours: mean ± std over seeds of :data:`COLS`, the discriminator's final entropy and the
    fresh probe's accuracy (%), and the thesis's I→T / T→I R@1, R@10 and "mAP" where ``paper`` has the row."""
    rows = []
    for name, r in results.items():
        row = {"configuration": adv.ABLATION_LABELS[name]}
        row.update({c: mean_std(r["metrics"][c]) for c in COLS})
        row["D entropy (end)"] = mean_std(r["metrics"]["final_d_entropy"])
        row["fresh probe acc."] = mean_std([100 * x for x in r["probe"]])
        if name in paper:
            q = paper[name]
            row["thesis I→T R@1 / R@10 / mAP"] = f"{q[0]} / {q[1]} / {q[2]}"
            row["thesis T→I R@1 / R@10 / mAP"] = f"{q[3]} / {q[4]} / {q[5]}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("configuration")


def plot_discriminator_curves(results: Mapping[str, Mapping[str, Any]]):
    """Seed 0's per-epoch discriminator entropy (nats) and accuracy and triplet loss, for the configurations
    among B1, B3, Full, Full-separate and Full-GRL that were trained. Returns the Figure."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for name in [n for n in ("B1", "B3", "Full", "Full-separate", "Full-GRL") if n in results]:
        h = results[name]["history"][0]
        ep = epoch_axis(h)
        axes[0].plot(ep, h.curve("d_entropy"), marker="o", label=name)
        axes[1].plot(ep, h.curve("d_accuracy"), marker="o", label=name)
        axes[2].plot(ep, h.curve("tr"), marker="o", label=name)
    axes[0].axhline(np.log(2), ls=":", c="gray")
    axes[0].set_title("D's entropy (nats, per epoch)")
    axes[1].axhline(0.5, ls=":", c="gray")
    axes[1].set_title("D's modality accuracy")
    axes[2].set_title("triplet loss L_tr")
    for ax in axes:
        ax.set_xlabel("epoch")
        whole_epoch_ticks(ax, len(results[next(iter(results))]["history"][0].epochs))
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def epoch_axis(h: adv.TrainHistory) -> np.ndarray:
    """The epochs of a history, counted from 1: (n_epochs,) integers."""
    return np.arange(1, len(h.epochs) + 1)


def whole_epoch_ticks(ax, n_epochs: int) -> None:
    """Ticks at whole epochs only: one per epoch up to 12 epochs (even for a single one), else integer ticks."""
    if n_epochs <= 12:
        ax.set_xticks(np.arange(1, n_epochs + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_loss_terms(h: adv.TrainHistory):
    """Every loss term of one run per epoch (L_ce, L_di, L_kl, L_tr and the adversary's L_s). Returns the
    Figure."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for k in [k for k in ("ce", "di", "kl", "tr", "adv") if k in h.epochs[0]]:
        ax.plot(epoch_axis(h), h.curve(k), marker="o", label={"adv": "L_s (adversary)"}.get(k, "L_" + k))
    ax.set_xlabel("epoch")
    whole_epoch_ticks(ax, len(h.epochs))
    ax.set_title("Full method: every loss term (seed 0)")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------------
# §5 temperature (Table 4.5)


def tau_key(t: float) -> str:
    """The configuration name of temperature ``t`` in the sweep, e.g. ``"tau=4"``."""
    return f"tau={t:g}"


def train_tau_sweep(
    split: adv.CaptionSplit,
    base: adv.CommonSpaceConfig,
    full: Mapping[str, Any],
    taus: Sequence[float],
    seeds: Sequence[int],
    device: str,
    checkpoint: Any = None,
    engine: Any = None,
) -> dict[float, Mapping[str, Any]]:
    """The full method at every τ of ``taus`` ∪ {base.tau} (``full``, the ablation's Full results, is reused at
    ``base.tau``): ``{τ: results of adv.run_configs}``, sorted by τ."""
    extra = sorted(set(taus) - {base.tau})
    got = (
        adv.run_configs(
            split,
            base,
            [tau_key(t) for t in extra],
            seeds,
            overrides={tau_key(t): {"tau": float(t)} for t in extra},
            device=device,
            checkpoint=checkpoint,
            engine=engine,
        )
        if extra
        else {}
    )
    got[tau_key(base.tau)] = full
    return {t: got[tau_key(t)] for t in sorted([*extra, base.tau])}


def train_tables(
    split: adv.CaptionSplit,
    base: adv.CommonSpaceConfig,
    p: Mapping[str, Any],
    seeds: Sequence[int],
    checkpoint: Any = None,
    engine: Any = None,
) -> tuple[dict[str, Mapping[str, Any]], dict[float, Mapping[str, Any]]]:
    """Every run of Tables 4.4 and 4.5 in one call of :func:`adv.run_configs` (one set of worker processes for all
    of them): the configurations ``p["ablation"]`` and the full method at every extra τ of ``p["tau_sweep"]``.
    Returns ``(ablation results, τ sweep)``, the τ sweep as :func:`train_tau_sweep` returns it (the Full runs at
    ``base.tau``)."""
    extra = sorted(set(p["tau_sweep"]) - {base.tau})
    over = {tau_key(t): {"tau": float(t)} for t in extra}
    got = adv.run_configs(
        split,
        base,
        [*p["ablation"], *over],
        seeds,
        overrides=over,
        device=p["device"],
        checkpoint=checkpoint,
        engine=engine,
    )
    results = {n: got[n] for n in p["ablation"]}
    sweep = {t: got[tau_key(t)] for t in extra}
    if "Full" in results:
        sweep[base.tau] = results["Full"]
    return results, {t: sweep[t] for t in sorted(sweep)}


def tau_metrics(sweep: Mapping[float, Mapping[str, Any]]) -> dict[str, list[float]]:
    """``tau/<τ>/<metric>`` per seed: R@1, R@10 and mAP of both directions."""
    return {
        f"tau/{t:g}/{k}": [float(x) for x in r["metrics"][k]]
        for t, r in sweep.items()
        for k in ("i2t/R@1", "i2t/R@10", "t2i/R@1", "t2i/R@10", "i2t/mAP", "t2i/mAP")
    }


def tau_table(sweep: Mapping[float, Mapping[str, Any]], paper: Mapping[int, Sequence[float]]) -> pd.DataFrame:
    """Table 4.5 beside ours: R@1 and mAP (mean ± std) per τ, and the thesis's I→T / T→I R@1 at whole τ."""
    rows = []
    for t, r in sweep.items():
        m = r["metrics"]
        q = paper.get(int(t)) if float(t).is_integer() else None
        rows.append(
            {
                "τ": t,
                "I→T R@1": mean_std(m["i2t/R@1"]),
                "T→I R@1": mean_std(m["t2i/R@1"]),
                "I→T mAP": mean_std(m["i2t/mAP"]),
                "thesis I→T / T→I R@1": f"{q[0]} / {q[1]}" if q else "–",
            }
        )
    return pd.DataFrame(rows).set_index("τ")


def plot_tau_sweep(sweep: Mapping[float, Mapping[str, Any]]):
    """R@1 of both directions against τ (mean, error bars = std over seeds). Returns the Figure."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ts = list(sweep)
    for key, lab in (("i2t/R@1", "I→T R@1"), ("t2i/R@1", "T→I R@1")):
        v = [sweep[t]["metrics"][key] for t in ts]
        ax.errorbar(ts, [np.mean(x) for x in v], yerr=[np.std(x) for x in v], marker="o", capsize=3, label=lab)
    ax.set_xlabel("τ")
    ax.set_ylabel("R@1 (%)")
    ax.legend()
    ax.set_title("temperature sweep (ours)")
    return fig


# ---------------------------------------------------------------------------------------------------------------
# §6 how the modalities mix


def first_captions(split: adv.CaptionSplit, n: int) -> np.ndarray:
    """The index of the first test caption of each of the first ``n`` test images: (n,)."""
    return np.array([np.nonzero(split.test_pair == i)[0][0] for i in range(n)])


def discriminator_outputs(model: adv.CommonSpaceModel, split: adv.CaptionSplit) -> tuple[np.ndarray, np.ndarray]:
    """The discriminator's P_D(image | z) on every test image feature and every test caption feature."""
    zi, zt = adv.embed(model, split.test_image, split.test_text, normalise=False)
    with torch.no_grad():
        pi = torch.softmax(model.discriminator(torch.as_tensor(zi)), 1)[:, 0].numpy()
        pt = torch.softmax(model.discriminator(torch.as_tensor(zt)), 1)[:, 0].numpy()
    return pi, pt


def plot_discriminator_histograms(results: Mapping[str, Mapping[str, Any]], split: adv.CaptionSplit):
    """Histograms of P_D(image | z) on the test features of both modalities, seed 0 of B3, Full, Full-separate
    and Full-GRL (those trained): an adversary that works piles them up at ½. Returns the Figure."""
    names = [n for n in ("B3", "Full", "Full-separate", "Full-GRL") if n in results]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        pi, pt = discriminator_outputs(results[name]["models"][0], split)
        ax.hist(pi, bins=30, range=(0, 1), alpha=0.6, density=True, label="image features")
        ax.hist(pt, bins=30, range=(0, 1), alpha=0.6, density=True, label="caption features")
        ax.set_title(name)
        ax.set_xlabel("P_D(image | z)")
    axes[0][0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def discriminator_view(results: Mapping[str, Mapping[str, Any]], split: adv.CaptionSplit) -> Any:
    """``draw(configuration, seed)`` for ``viz.explorer`` (``seed``: the index of the run among the seeds): left,
    the trained discriminator's P_D(image | z) on every test image and caption feature (an adversary that works
    piles both up at ½); right, D's entropy per epoch against log 2 (full confusion), with B1 (no adversary) in
    grey. Uses the trained models only (embedding the test split; no training)."""

    def draw(configuration: str, seed: int):
        r = results[configuration]
        pi, pt = discriminator_outputs(r["models"][seed], split)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
        axes[0].hist(pi, bins=30, range=(0, 1), alpha=0.6, density=True, label="image features")
        axes[0].hist(pt, bins=30, range=(0, 1), alpha=0.6, density=True, label="caption features")
        axes[0].axvline(0.5, ls=":", c="k", lw=1)
        axes[0].set(xlabel="P_D(image | z)", ylabel="density", title=f"{configuration}: D's output on the test set")
        axes[0].legend(fontsize=9)
        shown = ([("B1", "0.6")] if configuration != "B1" and "B1" in results else []) + [(configuration, "C0")]
        for name, colour in shown:
            h = results[name]["history"][seed]
            axes[1].plot(epoch_axis(h), h.curve("d_entropy"), marker="o", c=colour, label=name)
        axes[1].axhline(np.log(2), ls=":", c="gray", label="log 2: full confusion")
        axes[1].set(xlabel="epoch", ylabel="entropy (nats)", title="D's entropy per epoch", ylim=(0, 0.75))
        whole_epoch_ticks(axes[1], len(r["history"][seed].epochs))
        axes[1].legend(fontsize=9)
        return fig

    return draw


# ---------------------------------------------------------------------------------------------------------------
# §7 retrieval examples


def i2t_examples(S: np.ndarray, split: adv.CaptionSplit, test_captions: Sequence[str], n: int = 3, k: int = 5) -> str:
    """The top-``k`` captions of the first ``n`` test images under the similarities ``S`` (images × captions),
    ✓ marking the image's own captions, as printable text."""
    lines = []
    for q in range(n):
        lines.append(f"image {q}:")
        for r, j in enumerate(np.argsort(-S[q])[:k], 1):
            lines.append(f"   {r}. {'✓' if split.test_pair[j] == q else '✗'} {test_captions[j]}")
    return "\n".join(lines)


def t2i_examples(
    S: np.ndarray, split: adv.CaptionSplit, test_images: np.ndarray, n: int = 3, k: int = 5
) -> tuple[list[int], dict[str, Any]]:
    """The top-``k`` images (among the shown ``test_images``) of the second caption of each of the first ``n``
    test images. Returns ``(caption indices, keyword arguments of viz.ranked_grids)``; the query cell shows the
    caption's own image."""
    n_show = min(len(test_images), S.shape[0])
    queries = [int(np.nonzero(split.test_pair == i)[0][1]) for i in range(n)]
    results, status = [], []
    for j in queries:
        top = np.argsort(-S[:n_show, j])[:k]
        results.append([test_images[i] for i in top])
        status.append(["relevant" if i == split.test_pair[j] else "irrelevant" for i in top])
    grid = {
        "queries": [test_images[split.test_pair[j]] for j in queries],
        "results": results,
        "status": status,
        "row_titles": [f"caption {i + 1}" for i in range(len(queries))],
    }
    return queries, grid


def stability_metrics(stab: pd.DataFrame) -> dict[str, float]:
    """``stability/<σ>/<direction>/R@1`` from the table of :func:`adv.noise_stability` indexed by σ."""
    return {f"stability/{s:g}/{d}/R@1": float(row[f"{d}/R@1"]) for s, row in stab.iterrows() for d in ("i2t", "t2i")}
