"""Resumable, verified downloads and safe extraction — standard library only (urllib, hashlib, tarfile, zipfile).

``download(url, dest)`` streams to ``dest + ".part"``; when a ``.part`` exists it asks the server for the rest
(``Range: bytes=N-``) and appends (a server that ignores the range answers 200 and the file restarts). After the
last byte the checksum is computed; only a file that matches (or has no published checksum — then it is reported as
*unverified*) is renamed to ``dest``. A file shorter than its ``Content-Length`` stays as ``.part`` (run again to
resume); a complete file with the wrong checksum is moved to ``.corrupt`` and never used.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import socket
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["DownloadError", "NetworkUnavailable", "ChecksumMismatch", "file_hashes", "check_file", "download",
           "safe_extract", "USER_AGENT"]

USER_AGENT = "xmr-data-scripts/0.1 (+python urllib)"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed (HTTP error, truncated transfer)."""


class NetworkUnavailable(DownloadError):
    """No network: DNS failure, refused / unreachable connection, timeout."""


class ChecksumMismatch(DownloadError):
    """The file's checksum differs from the registry's."""


def file_hashes(path, algos=("sha256",)) -> dict:
    """{algo: hex digest} of a file, read in 1 MiB chunks."""
    hs = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            for h in hs.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hs.items()}


def check_file(path, sha256: str | None = None, md5: str | None = None) -> dict:
    """Hash ``path`` and compare with the expected checksums.

    Returns:
        ``{"sha256": hex, "md5": hex or None, "verified": bool, "ok": bool}`` — ``verified`` is False when no
        checksum was given; ``ok`` is False only on a mismatch.
    """
    algos = ("sha256", "md5") if md5 else ("sha256",)
    got = file_hashes(path, algos)
    ok = True
    if sha256 and got["sha256"].lower() != sha256.lower():
        ok = False
    if md5 and got["md5"].lower() != md5.lower():
        ok = False
    return {"sha256": got["sha256"], "md5": got.get("md5"), "verified": bool(sha256 or md5), "ok": ok}


_NET_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT,
               errno.ENETDOWN, errno.EHOSTDOWN, errno.ECONNABORTED}


def _is_network_error(e: BaseException) -> bool:
    if isinstance(e, urllib.error.HTTPError):
        return False
    if isinstance(e, (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, socket.gaierror)):
        return True
    return isinstance(e, OSError) and e.errno in _NET_ERRNOS


def _progress(done: int, total: int | None, name: str, quiet: bool) -> None:
    if quiet:
        return
    if total:
        sys.stderr.write(f"\r  {name}: {done / 1e6:,.1f} / {total / 1e6:,.1f} MB ({100 * done / total:.0f} %)")
    else:
        sys.stderr.write(f"\r  {name}: {done / 1e6:,.1f} MB")
    sys.stderr.flush()


def download(url: str, dest, sha256: str | None = None, md5: str | None = None, timeout: float = 30.0,
             quiet: bool = False) -> dict:
    """Download ``url`` to ``dest`` (resumable, verified; module docstring).

    Returns:
        :func:`check_file`'s dict plus ``"path"`` and ``"resumed_from"`` (bytes already on disk).
    Raises:
        NetworkUnavailable: no route to the server (URLError, timeout, refused connection).
        DownloadError: an HTTP error or a truncated transfer (the ``.part`` is kept for a resume).
        ChecksumMismatch: the whole file arrived but its checksum is wrong (moved to ``.corrupt``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    resumed_from = 0
    try:
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:          # nothing left to send: the .part is already complete
                resp = None
            else:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
        if resp is not None:
            with resp:
                status = getattr(resp, "status", 200)
                length = resp.headers.get("Content-Length")
                length = int(length) if length and length.isdigit() else None
                if status == 206 and have:
                    mode, resumed_from = "ab", have
                    total = have + length if length is not None else None
                else:                           # 200: the server sent the whole file
                    mode, have, total = "wb", 0, length
                if not quiet and resumed_from:
                    sys.stderr.write(f"  resuming {dest.name} at {resumed_from / 1e6:,.1f} MB\n")
                done = have
                with open(part, mode) as f:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        done += len(block)
                        _progress(done, total, dest.name, quiet)
                if not quiet:
                    sys.stderr.write("\n")
                if total is not None and done < total:
                    raise DownloadError(f"{url}: truncated transfer ({done:,} of {total:,} bytes); {part} is kept — "
                                        "run the same command again to resume")
    except DownloadError:
        raise
    except http.client.HTTPException as e:      # the connection broke mid-transfer
        raise DownloadError(f"{url}: transfer interrupted ({type(e).__name__}); {part} is kept — run the same "
                            "command again to resume") from e
    except Exception as e:  # noqa: BLE001
        if _is_network_error(e):
            raise NetworkUnavailable(f"no network: cannot reach {url} ({type(e).__name__}: "
                                     f"{getattr(e, 'reason', e)})") from e
        raise
    res = check_file(part, sha256, md5)
    if not res["ok"]:
        bad = dest.with_name(dest.name + ".corrupt")
        os.replace(part, bad)
        want = f"sha256 {sha256}" if sha256 else f"md5 {md5}"
        have_sum = f"sha256 {res['sha256']}" if sha256 else f"md5 {res['md5']}"
        raise ChecksumMismatch(f"{dest.name}: checksum mismatch (expected {want}, got {have_sum}); the download "
                               f"is corrupt or truncated and was NOT used (moved to {bad}); delete it and run "
                               "the command again")
    os.replace(part, dest)
    return {**res, "path": str(dest), "resumed_from": resumed_from}


def _safe_target(base: Path, name: str) -> Path:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise ValueError(f"archive member {name!r}: absolute path or '..' (path traversal); refusing to extract")
    target = (base / Path(*p.parts)).resolve() if p.parts else base.resolve()
    if target != base.resolve() and base.resolve() not in target.parents:
        raise ValueError(f"archive member {name!r} would be written outside {base}; refusing to extract")
    return target


def safe_extract(archive, dest) -> list[str]:
    """Extract a tar (any compression) or zip archive into ``dest``, refusing absolute paths, ``..`` components,
    links that point outside ``dest`` and device files (nothing is written when a member is rejected).

    Returns:
        the member names extracted.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
            for info in infos:
                _safe_target(dest, info.filename)
            for info in infos:
                target = _safe_target(dest, info.filename)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            return [i.filename for i in infos]
    if not tarfile.is_tarfile(archive):
        raise ValueError(f"{archive}: neither a tar nor a zip archive (an HTML error page saved by a browser?)")
    with tarfile.open(archive) as t:
        members = t.getmembers()
        for m in members:
            target = _safe_target(dest, m.name)
            if m.issym() or m.islnk():
                link = (target.parent / m.linkname) if m.issym() else dest / m.linkname
                if m.linkname.startswith("/") or dest.resolve() not in Path(os.path.normpath(link)).resolve().parents:
                    raise ValueError(f"archive member {m.name!r}: link to {m.linkname!r} outside {dest}; refusing")
            elif not (m.isfile() or m.isdir()):
                raise ValueError(f"archive member {m.name!r}: device or special file; refusing to extract")
        kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        t.extractall(dest, members=members, **kw)
        return [m.name for m in members]
