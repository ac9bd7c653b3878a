"""``python -m data_scripts`` — list, fetch, convert and verify the real benchmarks.

::

    python -m data_scripts list                                   # the registry, with sizes and licences
    python -m data_scripts info cub200                            # URLs, checksums, citation, layout
    python -m data_scripts fetch cub200 --root data               # download (resumable), verify, unpack, convert
    python -m data_scripts fetch cub200 --root data --from-dir ~/Downloads   # files you downloaded by hand
    python -m data_scripts convert cub200 --root data             # (re)convert what is under data/cub200/
    python -m data_scripts verify cub200 --root data              # checksums + the converted layout
    python -m data_scripts fetch resnet50                         # pretrained weights into the weights folder

Exit status: 0 done, 1 error (a download that failed or stalled, a checksum mismatch, a corrupt archive, a conversion
error — every failure is listed at the end; a rerun resumes or fetches again), 2 files missing (no network, or files
that must be downloaded by hand) — the message says which files and where to put them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from xmr_lib.core import safe_pickle

from . import registry
from .download import (
    CorruptArchive,
    DownloadError,
    NetworkUnavailable,
    archive_kind,
    check_archive,
    check_file,
    download,
    move_aside,
    safe_extract,
)

__all__ = ["main", "fetch", "verify", "list_datasets", "fetch_weights", "weights_dir"]

SUMS = "SHA256SUMS"  # sha256 of files that matched a PUBLISHED checksum
ARRIVED = "UNPINNED.sha256"  # sha256 of unpinned files as they arrived — not a published checksum
_ARRIVED_HEAD = (
    "# sha256 of files WITHOUT a published checksum, as they arrived. Not a published checksum: it shows a "
    "later change, not that the download was whole.\n"
)


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _fmt_mb(mb) -> str:
    if mb is None:
        return "?"
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB" if mb >= 1 else "<1 MB"


def list_datasets() -> int:
    _say(f"{'name':<20} {'size':>9}  {'how':<8} {'licence':<40} title")
    for name, s in registry.DATASETS.items():
        size = sum(f.size_mb or 0 for f in s.files if not f.optional) or None
        how = (
            "manual"
            if all(f.manual for f in s.files if not f.optional)
            else "partial"
            if any(f.manual for f in s.files if not f.optional)
            else "script"
        )
        _say(f"{name:<20} {_fmt_mb(size):>9}  {how:<8} {s.licence[:40]:<40} {s.title}")
    _say(f"\n{'weights':<24} {'size':>9}  {'hash':<10} title")
    for name, w in registry.WEIGHTS.items():
        _say(f"{name:<24} {_fmt_mb(w.size_mb):>9}  {w.sha256_prefix or 'unpinned':<10} {w.title}")
    _say(
        "\n'script': `fetch` downloads everything; 'partial' / 'manual': some files need a registration or a form "
        "(see `python -m data_scripts info NAME`)."
    )
    return 0


def info(name: str) -> int:
    if name in registry.WEIGHTS:
        w = registry.WEIGHTS[name]
        _say(f"{w.name}: {w.title}\n  file:     {w.file} (~{_fmt_mb(w.size_mb)})\n  url:      {w.url}")
        _say(f"  checksum: sha256 starts with {w.sha256_prefix}" if w.sha256_prefix else "  checksum: none published")
        _say(f"    from:   {w.checksum_source}\n  source:   {w.source}\n  licence:  {w.licence}")
        _say(f"  goes to:  {weights_dir()}/ (--dir DIR, or $XMR_WEIGHTS_DIR)")
        return 0
    s = registry.get(name)
    _say(f"{s.name}: {s.title}\n  homepage: {s.homepage}\n  licence:  {s.licence}\n  cite:     {s.citation}")
    if s.used_by:
        _say(f"  used by:  {s.used_by}")
    _say("  files:")
    for f in s.files:
        flags = ", ".join(x for x, on in (("optional", f.optional), ("manual", f.manual), ("archive", f.extract)) if on)
        size = f"{f.size:,} bytes" if f.size else f"~{_fmt_mb(f.size_mb)}"
        _say(f"    - {f.name} ({size}{'; ' + flags if flags else ''})")
        for u in f.urls:
            _say(f"        {u}")
        sums = [f"sha256 {f.sha256}"] if f.sha256 else []
        sums += [f"md5 {f.md5}"] if f.md5 else []
        if sums:
            _say(f"        checksum: {', '.join(sums)}")
            _say(f"          from: {f.checksum_source}")
        else:
            _say(
                "        checksum: none published — unpinned"
                + (" (accepted on length + a full archive read)" if f.extract else " (accepted on length only)")
            )
        _say(f"        source:   {f.source or 'unverified: no source recorded'}")
        if f.note:
            _say(f"        note:     {f.note}")
    _say(f"  layout:   <root>/{s.name}/: {s.layout}")
    if s.manual_steps:
        _say(f"  by hand:  {s.manual_steps}")
    return 0


# --------------------------------------------------------------------------------------------------------------
# fetch


def _record_sum(dl: Path, name: str, sha256: str, published: bool) -> None:
    """Record a sha256: in SHA256SUMS only when the file matched a published checksum, else in UNPINNED.sha256."""
    for fn in (SUMS, ARRIVED):  # a file lives in exactly one of the two
        p = dl / fn
        if p.is_file():
            lines = [
                ln
                for ln in p.read_text().splitlines()
                if ln and not ln.endswith(f"  {name}") and not ln.startswith("#")
            ]
            if lines or fn == SUMS:
                p.write_text((_ARRIVED_HEAD if fn == ARRIVED else "") + "".join(f"{ln}\n" for ln in lines))
            else:
                p.unlink()
    p = dl / (SUMS if published else ARRIVED)
    lines = [ln for ln in (p.read_text().splitlines() if p.is_file() else []) if ln and not ln.startswith("#")]
    p.write_text((_ARRIVED_HEAD if not published else "") + "".join(f"{ln}\n" for ln in lines + [f"{sha256}  {name}"]))


def _recorded_sums(dl: Path, fn: str = ARRIVED) -> dict:
    p = dl / fn
    out = {}
    for ln in p.read_text().splitlines() if p.is_file() else []:
        if "  " in ln and not ln.startswith("#"):
            h, n = ln.split("  ", 1)
            out[n] = h
    return out


def _report_check(f: registry.RemoteFile, res: dict) -> None:
    if res["verified"]:
        _say(f"  {f.name}: checksum OK ({'sha256' if f.sha256 else 'md5'} published by {f.checksum_source})")
    else:
        how = (
            "its length matched and the archive reads to its last byte"
            if archive_kind(f.name)
            else "only its length was checked"
        )
        _say(
            f"  {f.name}: UNPINNED — no published checksum exists for this file; {how}. Its sha256 as it arrived "
            f"is\n      {res['sha256']}\n      (kept in downloads/{ARRIVED} to notice a later change; it is not a "
            "published checksum)"
        )


def _check_present(f: registry.RemoteFile, p: Path) -> tuple[bool, str, dict | None]:
    """(usable, why not, check_file result) for a file already on disk: the published checksum decides, else an
    archive must read to its end."""
    res = check_file(p, f.sha256, f.md5)
    if not res["ok"]:
        want = f"sha256 {f.sha256}" if f.sha256 else f"md5 {f.md5}"
        return False, f"checksum MISMATCH with the published {want}", res
    if f.size is not None and p.stat().st_size != f.size:
        return False, f"{p.stat().st_size:,} bytes, the published size is {f.size:,}", res
    if not res["verified"] and archive_kind(f.name):
        try:
            check_archive(p)
        except (CorruptArchive, ValueError) as e:
            return False, str(e), res
    return True, "", res


def _find_in(from_dir: Path, name: str) -> Path | None:
    for cand in (from_dir / name, *sorted(from_dir.glob(f"*/{name}"))):
        if cand.exists():
            return cand
    return None


def _archive_stem(name: str) -> str:
    for ext in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _take_local(src: Path, dest: Path, link: bool) -> None:
    """Hard-link (same file system) or copy a file; copy or symlink a folder."""
    if src.is_dir():
        if link:
            dest.symlink_to(src.resolve(), target_is_directory=True)
        else:
            shutil.copytree(src, dest)
        return
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _manual_help(spec: registry.DatasetSpec, missing: list[registry.RemoteFile], root: Path, reason: str) -> None:
    dl = root / spec.name / "downloads"
    _say(f"\n{reason}")
    _say(f"Get these files for {spec.name} by hand (a browser, another machine):")
    for f in missing:
        where = f.urls[0] if f.urls else spec.homepage
        cs = f"sha256 {f.sha256}" if f.sha256 else f"md5 {f.md5}" if f.md5 else "no published checksum"
        _say(
            f"  - {f.name}{' (a folder)' if f.manual and not f.extract and '.' not in f.name else ''}  "
            f"~{_fmt_mb(f.size_mb)}  from {where}  [{cs}]"
        )
    if spec.manual_steps:
        _say(f"Note: {spec.manual_steps}")
    _say(
        "Then put them in one folder and run\n"
        f"  python -m data_scripts fetch {spec.name} --root {root} --from-dir FOLDER\n"
        f"(or copy them into {dl}/ and run the same command without --from-dir; an interrupted download left as "
        "<file>.part there is resumed)."
    )


def fetch(
    name: str,
    root,
    from_dir=None,
    optional: bool = False,
    timeout: float = 30.0,
    link: bool = False,
    convert: bool = True,
    quiet: bool = False,
    **convert_options,
) -> int:
    """Download / take / verify / unpack / convert one dataset (module docstring). Returns the exit status.

    Every file is tried even when another one fails (a stall, an HTML page, a corrupt archive); all failures are
    listed at the end. With ``from_dir`` nothing is downloaded: what is neither there nor in ``downloads/`` is
    listed for fetching by hand."""
    spec = registry.get(name)
    root = Path(root)
    ds = root / name
    dl = ds / "downloads"
    raw = ds / "raw"
    dl.mkdir(parents=True, exist_ok=True)
    from_dir = Path(from_dir).expanduser() if from_dir else None
    if from_dir is not None and not from_dir.is_dir():
        _say(f"--from-dir: {from_dir} is not a folder")
        return 1
    missing, failed, offline = [], [], None
    for f in spec.files:
        want = not f.optional or optional
        dest = dl / f.name
        local = _find_in(from_dir, f.name) if from_dir is not None else None
        unpacked = _find_in(from_dir, _archive_stem(f.name)) if from_dir is not None and f.extract else None
        if local is None and unpacked is not None and unpacked.is_dir() and not dest.is_file():
            target = raw / unpacked.name  # an archive the user already unpacked
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _say(f"  {f.name}: taking the unpacked folder {unpacked}")
                _take_local(unpacked, target, link)
            continue
        if local is not None and local.is_dir():
            target = (raw / f.name) if name == "pascal_sentence" else (ds / f.name)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _say(f"  {f.name}/: taking the folder from {local}")
                _take_local(local, target, link)
            continue
        if f.manual and not f.extract and not Path(f.name).suffix and not local:  # a manual folder
            target = (raw / f.name) if name == "pascal_sentence" else (ds / f.name)
            if not target.exists() and want:
                missing.append(f)
            continue
        if f.extract and (raw / ".unpacked" / f.name).is_file():
            _say(f"  {f.name}: already unpacked in {raw} (`verify` re-checks the archive)")
            continue
        if dest.is_file():
            usable, why, _ = _check_present(f, dest)
            if usable:
                _say(f"  {f.name}: already here")
                continue
            bad = move_aside(dest)
            _say(f"  {f.name}: the copy in {dl} is not usable ({why}); moved to {bad}, fetching it again")
        if local is not None:
            _say(f"  {f.name}: taking {local}")
            _take_local(local, dest, link=True)
            usable, why, res = _check_present(f, dest)
            if not usable:
                dest.unlink()
                failed.append(
                    (
                        f,
                        f"the file in --from-dir ({local}) is not usable: {why}; not used — replace it "
                        "with a good copy and run the command again",
                    )
                )
                continue
            _record_sum(dl, f.name, res["sha256"], published=res["verified"])
            _report_check(f, res)
            continue
        if f.extract and (raw / _archive_stem(f.name)).is_dir():
            _say(f"  {f.name}: already unpacked in {raw}")
            continue
        if not want:
            continue
        if from_dir is not None or f.manual or not f.urls or offline is not None:
            missing.append(f)  # --from-dir never goes to the network
            continue
        errors = []
        for url in f.urls:
            _say(f"  {f.name}: downloading {url}")
            try:
                res = download(
                    url,
                    dest,
                    sha256=f.sha256,
                    md5=f.md5,
                    size=f.size,
                    timeout=timeout,
                    quiet=quiet,
                    archive=bool(f.extract) or None,
                )
            except NetworkUnavailable as e:
                offline = str(e)
                break
            except DownloadError as e:  # stall, HTML page, truncation, mismatch: next mirror
                _say(f"  {e}")
                errors.append(str(e))
                continue
            _record_sum(dl, f.name, res["sha256"], published=res["verified"])
            _report_check(f, res)
            break
        if not dest.is_file():
            if errors:
                failed.append((f, errors[-1]))
            else:
                missing.append(f)
    if failed:
        _say(f"\n{len(failed)} file(s) of {name} failed:")
        for f, why in failed:
            _say(f"  - {f.name}: {why}")
        _say(
            f"Run the same command again: an interrupted download left as <file>.part in {dl} is resumed, a file "
            "moved to <file>.corrupt is downloaded again."
        )
    if missing:
        reason = (
            f"N{offline[1:]}."
            if offline
            else f"--from-dir {from_dir}: these files are not there (nothing is downloaded with --from-dir)."
            if from_dir is not None
            else "Some files cannot be downloaded by a script (registration or request form)."
        )
        _manual_help(spec, missing, root, reason)
    if failed:
        return 1
    if any(not f.optional for f in missing):
        return 2
    problems = []
    for f in spec.files:  # unpack archives; plain files are linked into raw/
        dest = dl / f.name
        if not f.extract and dest.is_file() and not (raw / f.name).exists():
            raw.mkdir(parents=True, exist_ok=True)
            _take_local(dest, raw / f.name, link=True)
            continue
        stamp = raw / ".unpacked" / f.name
        if f.extract and dest.is_file() and not stamp.is_file():
            _say(f"  {f.name}: unpacking into {raw}")
            try:
                safe_extract(dest, raw)
            except CorruptArchive as e:
                bad = move_aside(dest)
                problems.append(
                    f"{f.name}: {e} — moved to {bad}; nothing of it was unpacked. Run the same command "
                    "again to download it again (or put a good copy in a folder and pass --from-dir)"
                )
                continue
            except (ValueError, OSError) as e:
                problems.append(f"{f.name}: cannot unpack ({e}); nothing of it was unpacked")
                continue
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text("ok\n")
    if problems:
        _say(f"\n{len(problems)} archive(s) of {name} could not be unpacked:")
        for pr in problems:
            _say(f"  - {pr}")
        return 1
    if not convert:
        return 0
    return _convert(name, root, **convert_options)


def _convert(name: str, root, **options) -> int:
    from . import convert as conv  # numpy / scipy / PIL: only needed from here on

    _say(f"converting {name} → {Path(root) / name}")
    try:
        rep = conv.convert(name, root, **options)
    except (conv.ConversionError, ValueError, KeyError, OSError) as e:
        _say(f"conversion failed: {e}")
        return 1
    _say(f"  {rep.get('n', 0):,} items" + (f", splits {rep['splits']}" if rep.get("splits") else ""))
    if rep.get("missing"):
        _say("  still missing: " + "; ".join(rep["missing"]))
        _say(f"  (see `python -m data_scripts info {name}`)")
        return 2
    _say("  done")
    return 0


# --------------------------------------------------------------------------------------------------------------
# pretrained weights


def weights_dir() -> Path:
    """Where ``fetch NAME`` puts weights: ``$XMR_WEIGHTS_DIR``, else ``$XMR_DATA_DIR/weights`` (default
    ``~/.cache/xmr/weights``) — the first folders ``xmr_lib.core.paths.weights_dirs`` searches."""
    if os.environ.get("XMR_WEIGHTS_DIR"):
        return Path(os.environ["XMR_WEIGHTS_DIR"]).expanduser()
    return Path(os.environ.get("XMR_DATA_DIR") or Path.home() / ".cache" / "xmr").expanduser() / "weights"


def _weights_ok(w: registry.WeightsFile, p: Path) -> tuple[bool, str]:
    digest = check_file(p)["sha256"]
    if w.sha256_prefix and not digest.startswith(w.sha256_prefix):
        return False, f"sha256 {digest} does not start with the published {w.sha256_prefix}"
    return True, digest


def fetch_weights(
    name: str, dest=None, from_dir=None, timeout: float = 30.0, quiet: bool = False, url: str | None = None
) -> int:
    """Download (resumable), check and place one pretrained weight file of :data:`registry.WEIGHTS`.

    The file lands in ``dest`` (default :func:`weights_dir`) only when whole: a file whose sha256 does not start with
    the published prefix is moved to ``.corrupt`` and refused; a cut transfer stays ``.part`` for a resume.
    ``url`` replaces the registry's URL (a mirror). Returns the exit status (0 done, 1 refused / failed, 2 no
    network)."""
    w = registry.get_weights(name)
    d = Path(dest).expanduser() if dest else weights_dir()
    d.mkdir(parents=True, exist_ok=True)
    target = d / w.file
    if target.is_file():
        ok, why = _weights_ok(w, target)
        if ok:
            _say(
                f"  {w.file}: already in {d}" + (f" (sha256 starts with {w.sha256_prefix})" if w.sha256_prefix else "")
            )
            return 0
        bad = move_aside(target)
        _say(f"  {w.file}: the copy in {d} is not usable ({why}); moved to {bad}, fetching it again")
    if from_dir is not None:
        local = _find_in(Path(from_dir).expanduser(), w.file)
        if local is None or not local.is_file():
            _say(f"--from-dir: no {w.file} in {from_dir} (nothing is downloaded with --from-dir); get it from {w.url}")
            return 2
        ok, why = _weights_ok(w, local)
        if not ok:
            _say(f"  {local}: {why}; not used — the file is corrupt, truncated or another file")
            return 1
        _take_local(local, target, link=False)
        _say(f"  {w.file}: taken from {local}; sha256 {why}")
        return 0
    src = url or w.url
    _say(f"  {w.file}: downloading {src}")
    try:
        res = download(src, target, sha256_prefix=w.sha256_prefix, timeout=timeout, quiet=quiet, archive=False)
    except NetworkUnavailable as e:
        _say(f"{e}\nDownload {w.url} by hand and run `python -m data_scripts fetch {name} --from-dir FOLDER`.")
        return 2
    except DownloadError as e:
        _say(f"  {e}")
        return 1
    if res["pinned"]:
        _say(f"  {w.file}: sha256 {res['sha256']} starts with the published {w.sha256_prefix} ({w.checksum_source})")
    else:
        _say(f"  {w.file}: UNPINNED ({w.checksum_source}); sha256 as it arrived {res['sha256']}")
    _say(f"  → {target}")
    return 0


# --------------------------------------------------------------------------------------------------------------
# verify


def verify(name: str, root) -> int:
    """Check the downloaded files and the converted layout. Returns 0 when everything checks, 1 otherwise.

    A file with a published checksum is checked against it. A file without one is reported as *unpinned*: an archive
    must still read to its last byte, and its sha256 is compared with the value recorded when it arrived (which
    only shows that it did not change since — never that it is the published file)."""
    spec = registry.get(name)
    ds = Path(root) / name
    dl = ds / "downloads"
    ok = True
    arrived = _recorded_sums(dl, ARRIVED)
    for f in spec.files:
        p = dl / f.name
        if not p.is_file():
            continue
        res = check_file(p, f.sha256, f.md5)
        if not res["ok"]:
            _say(f"  {f.name}: MISMATCH with the published checksum ({f.checksum_source})")
            ok = False
            continue
        if f.size is not None and p.stat().st_size != f.size:
            _say(f"  {f.name}: WRONG SIZE {p.stat().st_size:,} bytes, published {f.size:,}")
            ok = False
            continue
        if res["verified"]:
            _say(f"  {f.name}: OK (published {'sha256' if f.sha256 else 'md5'}: {f.checksum_source})")
            continue
        msg = f"  {f.name}: unpinned (no published checksum), sha256 {res['sha256']}"
        if archive_kind(f.name):
            try:
                n = check_archive(p)
                msg += f"; archive reads to its end ({n:,} members)"
            except (CorruptArchive, ValueError) as e:
                msg += f"; CORRUPT: {e}"
                ok = False
        if f.name in arrived:
            same = arrived[f.name] == res["sha256"]
            ok &= same
            msg += "; unchanged since download" if same else "; CHANGED since download"
        _say(msg)
    problems = layout_problems(name, ds)
    for pr in problems:
        _say(f"  layout: {pr}")
    if not problems:
        _say(f"  layout: {ds} is complete")
    return 0 if ok and not problems else 1


def layout_problems(name: str, ds: Path) -> list[str]:
    """What is wrong with the converted layout under ``ds`` (empty: nothing)."""
    import csv

    from . import convert as conv

    if not ds.is_dir():
        return [f"{ds} does not exist; run `python -m data_scripts fetch {name} --root {ds.parent}`"]
    if name in ("roxford5k", "rparis6k"):
        pkl = ds / f"gnd_{name}.pkl"
        if not pkl.is_file():
            return [f"no {pkl}"]
        cfg = safe_pickle.load(pkl)
        miss = [n for n in list(cfg["imlist"]) + list(cfg["qimlist"]) if not (ds / "jpg" / f"{n}.jpg").is_file()]
        return [f"{len(miss)} images missing in {ds / 'jpg'} (e.g. {miss[0]}.jpg)"] if miss else []
    if name in ("mediaeval2017_div", "pascal2019_targets", "retrieval_sfm120k"):
        return conv.CONVERTERS[name](ds)["missing"]
    if name == "cirtorch_networks":
        return [] if any(ds.glob("*.pth")) else [f"no .pth file in {ds}"]
    idx = ds / "index.csv"
    if not idx.is_file():
        return [f"no {idx}; run `python -m data_scripts convert {name} --root {ds.parent}`"]
    with open(idx, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    miss = [r["path"] for r in rows if not (ds / "images" / r["path"]).is_file()]
    out = [f"{len(miss)} of {len(rows)} images missing under {ds / 'images'} (e.g. {miss[0]})"] if miss else []
    if name in ("mirflickr25k", "nuswide"):
        out += [f"no {ds / f}" for f in ("labels.npy", "tags_bow.npy") if not (ds / f).is_file()]
    return out


# --------------------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_scripts",
        description=__doc__.split("::")[0].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the registered datasets")
    q = sub.add_parser("info", help="URLs, checksums, licence, citation and layout of one dataset or weight file")
    q.add_argument("name")
    for cmd, hlp in (
        ("fetch", "download (or take from --from-dir), verify, unpack and convert"),
        ("convert", "convert what is already under ROOT/NAME"),
        ("verify", "checksums of the downloads and completeness of the converted layout"),
    ):
        q = sub.add_parser(cmd, help=hlp)
        q.add_argument("name")
        q.add_argument(
            "--root",
            required=cmd != "fetch",
            help="data root; the dataset goes to ROOT/NAME/ (not for weights: they go to --dir)",
        )
        if cmd in ("fetch", "convert"):
            q.add_argument(
                "--image-size",
                type=int,
                default=None,
                help="MIRFlickr / NUS-WIDE: side of images.npy (0: do not write it)",
            )
            q.add_argument("--min-tag-count", type=int, default=None, help="MIRFlickr: keep tags in >= N images")
            q.add_argument("--n-labels", type=int, default=None, help="NUS-WIDE: most frequent concepts kept")
        if cmd == "fetch":
            q.add_argument("--from-dir", default=None, help="folder with files downloaded by hand")
            q.add_argument("--optional", action="store_true", help="also fetch the optional files")
            q.add_argument("--timeout", type=float, default=30.0, help="network timeout, seconds")
            q.add_argument("--link", action="store_true", help="symlink folders from --from-dir instead of copying")
            q.add_argument("--no-convert", action="store_true", help="download and unpack only")
            q.add_argument("--quiet", action="store_true", help="no progress lines")
            q.add_argument(
                "--dir",
                default=None,
                help="weights only: target folder (default $XMR_WEIGHTS_DIR or ~/.cache/xmr/weights)",
            )
    return p


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd == "list":
            return list_datasets()
        if a.cmd == "info":
            return info(a.name)
        if a.cmd == "fetch" and a.name in registry.WEIGHTS:
            return fetch_weights(a.name, a.dir, from_dir=a.from_dir, timeout=a.timeout, quiet=a.quiet)
        registry.get(a.name)
        if a.cmd == "fetch" and not a.root:
            _say("--root: required for a dataset (the dataset goes to ROOT/NAME/)")
            return 1
        if a.cmd == "verify":
            return verify(a.name, a.root)
        opts = {"image_size": a.image_size, "min_tag_count": a.min_tag_count, "n_labels": a.n_labels}
        if a.cmd == "convert":
            return _convert(a.name, a.root, **opts)
        return fetch(
            a.name,
            a.root,
            from_dir=a.from_dir,
            optional=a.optional,
            timeout=a.timeout,
            link=a.link,
            convert=not a.no_convert,
            quiet=a.quiet,
            **opts,
        )
    except ValueError as e:
        _say(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
