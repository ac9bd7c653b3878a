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


TORCHVISION_WEIGHTS: dict[str, tuple[WeightsSpec, ...]] = {
    "resnet18": (
        WeightsSpec(
            "resnet18", "resnet18-f37072fd.pth", _TV + "resnet18-f37072fd.pth", "ResNet18_Weights.IMAGENET1K_V1"
        ),
    ),
    "resnet50": (
        WeightsSpec(
            "resnet50", "resnet50-0676ba61.pth", _TV + "resnet50-0676ba61.pth", "ResNet50_Weights.IMAGENET1K_V1"
        ),
        WeightsSpec(
            "resnet50",
            "resnet50-11ad3fa6.pth",
            _TV + "resnet50-11ad3fa6.pth",
            "ResNet50_Weights.IMAGENET1K_V2 (trained at 176 px, evaluated with resize 232)",
        ),
    ),
    "vgg16": (WeightsSpec("vgg16", "vgg16-397923af.pth", _TV + "vgg16-397923af.pth", "VGG16_Weights.IMAGENET1K_V1"),),
}


def missing_weights_message(name: str) -> str:
    """The text of the error raised when pretrained weights for ``name`` are not on disk."""
    specs = TORCHVISION_WEIGHTS.get(name, ())
    dirs = "\n".join(f"    {d}" for d in weights_dirs())
    files = "\n".join(f"    {s.filename}  ({s.note})\n      fetch by hand: {s.url}" for s in specs)
    return (
        f"no pretrained weights for {name!r} on this machine, and xmr never downloads them.\n"
        f"  Put one of these files\n{files}\n"
        f"  into one of these folders (set XMR_WEIGHTS_DIR to add your own):\n{dirs}\n"
        f"  or pass weights='/path/to/file.pth' (with sha256='...' to check it), "
        f"or pretrained=False for random weights."
    )


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
