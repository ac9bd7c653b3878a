"""Where things live: the package's shipped assets, the data / cache / weights folders, the checkout and the
run folder."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"  # package data shipped in xmr_lib/assets/


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


@dataclass(frozen=True)
class WeightsSpec:
    """A standard weight file: ``filename`` follows torch.hub's ``<name>-<first 8 hex digits of sha256>.pth``
    convention, so the prefix is checked whenever the file is loaded (:func:`xmr_lib.encoders.backbones.load_weights_file`)."""

    arch: str
    filename: str
    url: str
    note: str = ""

    @property
    def sha256_prefix(self) -> str:
        return self.filename.rsplit("-", 1)[-1].split(".")[0]


_TV = "https://download.pytorch.org/models/"


def _tv(arch: str, filename: str, note: str) -> WeightsSpec:
    return WeightsSpec(arch, filename, _TV + filename, note)


#: the standard torchvision ImageNet weight files per backbone (first: what ``python -m data_scripts fetch NAME``
#: downloads; data_scripts/registry.py ``WEIGHTS`` says where each URL and sha256 prefix comes from)
TORCHVISION_WEIGHTS: dict[str, tuple[WeightsSpec, ...]] = {
    "alexnet": (_tv("alexnet", "alexnet-owt-7be5be79.pth", "AlexNet_Weights.IMAGENET1K_V1"),),
    "vgg16": (_tv("vgg16", "vgg16-397923af.pth", "VGG16_Weights.IMAGENET1K_V1"),),
    "googlenet": (_tv("googlenet", "googlenet-1378be20.pth", "GoogLeNet_Weights.IMAGENET1K_V1"),),
    "resnet18": (_tv("resnet18", "resnet18-f37072fd.pth", "ResNet18_Weights.IMAGENET1K_V1"),),
    "resnet50": (
        _tv("resnet50", "resnet50-0676ba61.pth", "ResNet50_Weights.IMAGENET1K_V1"),
        _tv(
            "resnet50",
            "resnet50-11ad3fa6.pth",
            "ResNet50_Weights.IMAGENET1K_V2 (trained at 176 px, evaluated with resize 232)",
        ),
    ),
    "resnet101": (
        _tv("resnet101", "resnet101-63fe2227.pth", "ResNet101_Weights.IMAGENET1K_V1"),
        _tv("resnet101", "resnet101-cd907fc2.pth", "ResNet101_Weights.IMAGENET1K_V2"),
    ),
    "resnet152": (
        _tv("resnet152", "resnet152-394f9c45.pth", "ResNet152_Weights.IMAGENET1K_V1"),
        _tv("resnet152", "resnet152-f82ba261.pth", "ResNet152_Weights.IMAGENET1K_V2"),
    ),
    "mobilenet_v2": (
        _tv("mobilenet_v2", "mobilenet_v2-b0353104.pth", "MobileNet_V2_Weights.IMAGENET1K_V1"),
        _tv("mobilenet_v2", "mobilenet_v2-7ebf99e0.pth", "MobileNet_V2_Weights.IMAGENET1K_V2"),
    ),
    "inception_v3": (_tv("inception_v3", "inception_v3_google-0cc3c7bd.pth", "Inception_V3_Weights.IMAGENET1K_V1"),),
}

#: retrieval networks released with their papers (no published checksum: their name's suffix is not checked)
RETRIEVAL_WEIGHTS: dict[str, tuple[WeightsSpec, ...]] = {
    "cirtorch_resnet101_gem": (
        WeightsSpec(
            "resnet101",
            "retrievalSfM120k-resnet101-gem-b80fb85.pth",
            "http://cmp.felk.cvut.cz/cnnimageretrieval/data/networks/retrieval-SfM-120k/"
            "retrievalSfM120k-resnet101-gem-b80fb85.pth",
            "the GeM paper's ResNet-101 GeM trained on SfM-120k (cnnimageretrieval-pytorch)",
        ),
    ),
}


def fetch_command(name: str) -> str:
    """The command that downloads and checks the weights ``name`` into the first weights folder."""
    return f"python -m data_scripts fetch {name}"


def missing_weights_message(name: str) -> str:
    """The text of the error raised when pretrained weights for ``name`` are not on disk."""
    specs = TORCHVISION_WEIGHTS.get(name, ()) or RETRIEVAL_WEIGHTS.get(name, ())
    dirs = "\n".join(f"    {d}" for d in weights_dirs())
    files = "\n".join(f"    {s.filename}  ({s.note})\n      fetch by hand: {s.url}" for s in specs)
    return (
        f"no pretrained weights for {name!r} on this machine, and xmr never downloads them.\n"
        f"  Run\n    {fetch_command(name)}\n"
        f"  (downloads {specs[0].filename if specs else 'it'}, checks its published hash, puts it in the first "
        f"folder below), or put one of these files\n{files}\n"
        f"  into one of these folders (set XMR_WEIGHTS_DIR to add your own):\n{dirs}\n"
        f"  or pass weights='/path/to/file.pth' (with sha256='...' to check it), "
        f"or pretrained=False for random weights."
    )


def find_weights(name: str, weights: str | os.PathLike | None = None) -> Path:
    """The weight file for backbone ``name``.

    Args:
        name: a key of :data:`TORCHVISION_WEIGHTS` (``"vgg16"``, ``"resnet50"``, ...) or of
            :data:`RETRIEVAL_WEIGHTS` (``"cirtorch_resnet101_gem"``).
        weights: a file (used as is) or a folder (searched for the standard file names); ``None`` searches
            :func:`weights_dirs`.

    Returns:
        the path of an existing file.

    Raises:
        FileNotFoundError: naming the ``python -m data_scripts fetch NAME`` command, the file(s) to put where and
            the official URL(s).
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
    table = {**TORCHVISION_WEIGHTS, **RETRIEVAL_WEIGHTS}
    if name not in table:
        raise FileNotFoundError(f"weights: no standard weight file is known for {name!r}; pass weights=FILE")
    for d in dirs:
        for spec in table[name]:
            if (d / spec.filename).is_file():
                return d / spec.filename
    raise FileNotFoundError(missing_weights_message(name))


def _git_commit() -> str | None:
    """The checkout's HEAD commit (with ``+dirty`` when the work tree has changes), or ``None`` outside git."""
    root = repo_root()
    if root is None or not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty else "")) or None


def repo_root() -> Path | None:
    """The xmr checkout containing the current directory, if any (a folder with pyproject.toml and notebooks/)."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "notebooks").is_dir():
            return d
    return None


def run_dir() -> Path:
    """Folder for this run's records: ``$XMR_RUN_DIR`` (set by the runner), else ``<repo>/runs/interactive``."""
    env = os.environ.get("XMR_RUN_DIR")
    if env:
        d = Path(env)
    else:
        root = repo_root()
        d = (root if root is not None else Path.cwd()) / "runs" / "interactive"
    d.mkdir(parents=True, exist_ok=True)
    return d
