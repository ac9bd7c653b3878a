"""Resumable, checked downloads and all-or-nothing extraction — standard library only.

``download(url, dest)`` streams to ``dest + ".part"`` and renames it to ``dest`` only when it is known whole:

* **Length.** A 200 answer must announce its ``Content-Length`` (without one, only a file whose published checksum,
  published size or archive structure can prove it whole is accepted); a 206 answer must carry a ``Content-Range``
  that starts at the requested offset (a 206 that restarts at byte 0 is taken as a fresh start, any other offset is
  refused). Fewer bytes than announced keep the ``.part`` for a resume; more are refused.
* **416** (nothing left to send) means "check what is there", never "complete": the ``.part`` is kept only when its
  length equals the total the server (or the registry) states and it passes the checks below; a ``.part`` longer
  than the file is dropped and the download restarts.
* **Not the file.** An answer with ``Content-Type: text/html``, or a body that starts with ``<!doctype`` /
  ``<html``, is an error or login page: refused, nothing is kept.
* **Stall vs no network.** No connection (DNS, refused, unreachable, connect timeout) raises
  :class:`NetworkUnavailable`; a server that stops sending mid-body (read timeout) raises :class:`TransferStalled`
  (the ``.part`` is kept for a resume) so that the caller can go on with the other files.
* **Checks.** A published checksum (sha256 or md5) decides; a file without one that is an archive must be readable
  to its last byte (:func:`check_archive`); otherwise it is *unpinned* — accepted on its length only, and said so.
  A whole file that fails a check is moved to ``dest + ".corrupt"`` and never used; a rerun fetches it again.

``safe_extract`` refuses path traversal and unpacks into a temporary folder next to the target, moving the result
into place only after the whole archive was read without error; a corrupt archive raises :class:`CorruptArchive`.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import lzma
import os
import re
import shutil
import socket
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

__all__ = [
    "DownloadError",
    "NetworkUnavailable",
    "TransferStalled",
    "NotTheFile",
    "ChecksumMismatch",
    "CorruptArchive",
    "file_hashes",
    "check_file",
    "archive_kind",
    "check_archive",
    "download",
    "safe_extract",
    "move_aside",
    "USER_AGENT",
]

USER_AGENT = "xmr-data-scripts/0.2 (+python urllib)"
CHUNK = 1 << 20
READ = 1 << 16


class DownloadError(RuntimeError):
    """A download failed (HTTP error, truncated or refused transfer). The message says what to do."""


class NetworkUnavailable(DownloadError):
    """No network: DNS failure, refused / unreachable connection, connect timeout."""


class TransferStalled(DownloadError):
    """The server accepted the connection but stopped sending (read timeout); the ``.part`` is kept."""


class NotTheFile(DownloadError):
    """The server answered with an HTML page (error / login / consent page) instead of the file."""


class ChecksumMismatch(DownloadError):
    """The file's checksum differs from the published one."""


class CorruptArchive(DownloadError, ValueError):
    """A tar / zip archive that cannot be read to its end (truncated or damaged)."""


def file_hashes(path, algos=("sha256",)) -> dict:
    """{algo: hex digest} of a file, read in 1 MiB chunks."""
    hs = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            for h in hs.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hs.items()}


def check_file(path, sha256: str | None = None, md5: str | None = None) -> dict:
    """Hash ``path`` and compare with the published checksums.

    Returns:
        ``{"sha256": hex, "md5": hex or None, "verified": bool, "ok": bool}`` — ``verified`` is True only when a
        published checksum was given and matched; ``ok`` is False only on a mismatch.
    """
    algos = ("sha256", "md5") if md5 else ("sha256",)
    got = file_hashes(path, algos)
    ok = True
    if sha256 and got["sha256"].lower() != sha256.lower():
        ok = False
    if md5 and got["md5"].lower() != md5.lower():
        ok = False
    return {"sha256": got["sha256"], "md5": got.get("md5"), "verified": bool(sha256 or md5) and ok, "ok": ok}


def move_aside(path) -> Path:
    """Rename ``path`` (or ``NAME.part``) to ``NAME.corrupt`` (replacing an older one) and return the new path."""
    path = Path(path)
    stem = path.name[: -len(".part")] if path.name.endswith(".part") else path.name
    bad = path.with_name(stem + ".corrupt")
    os.replace(path, bad)
    return bad


# --------------------------------------------------------------------------------------------------------------
# archives


_TAR_EXT = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def archive_kind(name) -> str | None:
    """``"zip"``, ``"tar"`` or None, from the file name."""
    n = str(name).lower()
    if n.endswith(".zip"):
        return "zip"
    return "tar" if n.endswith(_TAR_EXT) else None


def _looks_like_html(head: bytes) -> bool:
    h = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:16].lower()
    return h.startswith((b"<!doctype", b"<html", b"<head", b"<?xml"))


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    if _looks_like_html(head):
        raise ValueError(
            f"{path}: neither a tar nor a zip archive — it is an HTML page (an error or login page "
            "saved instead of the file?); delete it and download the file again"
        )
    kind = archive_kind(path.name)
    if kind is None or not head:
        raise ValueError(f"{path}: neither a tar nor a zip archive ({len(head)} leading bytes not recognised)")
    return kind


# what a damaged archive raises while it is read (a disk-full OSError while writing is not one of them)
_READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
    NotImplementedError,
)


def _corrupt(path: Path, e: BaseException | str) -> CorruptArchive:
    why = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
    return CorruptArchive(
        f"{path.name}: corrupt or truncated archive ({why}); it cannot be used — delete it (or let "
        "`fetch` move it to .corrupt) and download it again"
    )


def _tar_tail_check(t: tarfile.TarFile, path: Path) -> None:
    """After all members were read: the end-of-archive marker must follow, and a compressed stream must end with a
    valid trailer (a tar cut at a member boundary reads as a shorter, valid-looking archive otherwise)."""
    f = t.fileobj
    f.seek(t.offset)
    tail = f.read(2 * tarfile.BLOCKSIZE)
    if len(tail) < tarfile.BLOCKSIZE or tail[: tarfile.BLOCKSIZE].strip(b"\0"):
        raise _corrupt(path, f"no end-of-archive marker after {t.offset:,} bytes: the file was cut short")
    while f.read(CHUNK):  # gzip / bz2 / xz: decompress to the end (CRC, truncated stream → error)
        pass


def check_archive(path, kind: str | None = None) -> int:
    """Read a tar / zip archive to its last byte (every member, CRCs, the compressed stream's trailer).

    Returns:
        the number of members.
    Raises:
        CorruptArchive: naming the file, when it is truncated or damaged.
        ValueError: when it is not an archive at all (e.g. an HTML page).
    """
    path = Path(path)
    kind = kind or _sniff(path)
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
                if bad is not None:
                    raise _corrupt(path, f"member {bad!r} fails its CRC")
                return len(z.infolist())
        with tarfile.open(path, "r:*") as t:
            n = 0
            for m in t:
                n += 1
                if m.isfile():
                    src = t.extractfile(m)
                    got = 0
                    for block in iter(lambda: src.read(CHUNK), b""):  # noqa: B023 - called at once, inside the loop
                        got += len(block)
                    if got != m.size:
                        raise _corrupt(path, f"member {m.name!r}: {got:,} of {m.size:,} bytes")
            _tar_tail_check(t, path)
            return n
    except CorruptArchive:
        raise
    except _READ_ERRORS as e:
        raise _corrupt(path, e) from e


# --------------------------------------------------------------------------------------------------------------
# download


_NET_ERRNOS = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ECONNREFUSED,
    errno.ETIMEDOUT,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
}


def _is_network_error(e: BaseException) -> bool:
    if isinstance(e, urllib.error.HTTPError):
        return False
    if isinstance(e, (urllib.error.URLError, socket.gaierror, ConnectionRefusedError)):
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


_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
_RANGE_416 = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)


def _int_header(headers, name: str) -> int | None:
    v = (headers.get(name) or "").strip()
    return int(v) if v.isdigit() else None


class _Restart(Exception):
    """Drop the ``.part`` and start again from byte 0 (internal)."""


def _transfer(
    url: str, part: Path, name: str, size: int | None, pinned: bool, archive: bool, timeout: float, quiet: bool
) -> dict:
    """One HTTP exchange into ``part``. Returns ``{"resumed_from", "total"}``; raises DownloadError / _Restart."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    kept = f"{part} is kept — run the same command again to resume"
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            m = _RANGE_416.match(e.headers.get("Content-Range") or "") if e.headers else None
            total = int(m.group(1)) if m else size
            if total is not None and have == total:
                return {"resumed_from": have, "total": total, "note": "416: the .part already has every byte"}
            if total is not None and have > total:
                raise _Restart(f"the .part has {have:,} bytes but the file has {total:,} (HTTP 416)") from None
            if pinned:  # the published checksum decides
                return {"resumed_from": have, "total": None, "note": "416 without a total"}
            raise _Restart("HTTP 416 without the file's length: the .part cannot be checked") from None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise NetworkUnavailable(f"no network: cannot reach {url} ({type(e.reason).__name__}: {e.reason})") from e
    except (TimeoutError, socket.timeout) as e:
        raise TransferStalled(
            f"{url}: stalled — the server accepted the connection but sent no answer within "
            f"{timeout:g} s; run the same command again (or raise --timeout)"
        ) from e
    except (http.client.HTTPException, ConnectionError) as e:
        if isinstance(e, ConnectionRefusedError):
            raise NetworkUnavailable(f"no network: cannot reach {url} ({e})") from e
        raise DownloadError(f"{url}: the connection broke before an answer ({type(e).__name__}: {e})") from e
    except OSError as e:
        if _is_network_error(e):
            raise NetworkUnavailable(f"no network: cannot reach {url} ({type(e).__name__}: {e})") from e
        raise
    with resp:
        status = getattr(resp, "status", 200)
        ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype in ("text/html", "application/xhtml+xml"):
            raise NotTheFile(
                f"{url}: the server sent an HTML page (Content-Type {ctype}), not {name} — an error, "
                "login or consent page; nothing was kept. Open the URL in a browser, download the "
                "file by hand and use --from-dir"
            )
        clen = _int_header(resp.headers, "Content-Length")
        if status == 206:
            m = _RANGE.match(resp.headers.get("Content-Range") or "")
            if not m:
                raise DownloadError(
                    f"{url}: HTTP 206 without a valid Content-Range "
                    f"({resp.headers.get('Content-Range')!r}); nothing was written, {kept}"
                )
            s, e_, t = int(m.group(1)), int(m.group(2)), m.group(3)
            t = None if t == "*" else int(t)
            if clen is not None and clen != e_ - s + 1:
                raise DownloadError(
                    f"{url}: Content-Length {clen:,} disagrees with Content-Range bytes {s}-{e_}; "
                    f"nothing was written, {kept}"
                )
            if s == have:
                mode, start = "ab", have
            elif s == 0 and (t is None or e_ + 1 == t):
                mode, start = "wb", 0  # honestly labelled full body: a fresh start
            else:
                raise DownloadError(
                    f"{url}: asked for bytes {have}- but the server sent bytes {s}-{e_} (HTTP 206 "
                    f"at the wrong offset); nothing was written, {kept}"
                )
            total = t if t is not None else e_ + 1
        elif status == 200:
            mode, start, total = "wb", 0, clen
            if clen is None:
                if size is None and not pinned and not archive:
                    raise DownloadError(
                        f"{url}: the server sent no Content-Length and {name} has no published "
                        "size or checksum, so a cut transfer could not be told from a whole file; "
                        "nothing was kept. Download it by hand and use --from-dir"
                    )
                total = size
        else:
            raise DownloadError(f"{url}: unexpected HTTP {status}")
        if size is not None and total is not None and total != size:
            raise DownloadError(
                f"{url}: the server announces {total:,} bytes but the published size of {name} is "
                f"{size:,} — a different file or an error page; nothing was written"
            )
        if not quiet and start:
            sys.stderr.write(f"  resuming {name} at {start / 1e6:,.1f} MB\n")
        done, first = start, True
        with open(part, mode) as f:
            while True:
                try:
                    block = resp.read(READ)
                except (TimeoutError, socket.timeout) as e:
                    f.flush()
                    raise TransferStalled(
                        f"{url}: stalled — no data for {timeout:g} s after {done:,} bytes (the "
                        f"server stopped sending; this is not a network outage); {kept}"
                    ) from e
                except (http.client.HTTPException, OSError) as e:
                    f.flush()
                    raise DownloadError(
                        f"{url}: transfer interrupted after {done:,} bytes ({type(e).__name__}); {kept}"
                    ) from e
                if not block:
                    break
                if first and start == 0 and _looks_like_html(block[:64]):
                    f.close()
                    part.unlink(missing_ok=True)
                    raise NotTheFile(
                        f"{url}: the server sent an HTML page, not {name} (the body starts with "
                        f"{block[:15]!r}); nothing was kept. Open the URL in a browser, download the "
                        "file by hand and use --from-dir"
                    )
                first = False
                f.write(block)
                done += len(block)
                _progress(done, total, name, quiet)
        if not quiet:
            sys.stderr.write("\n")
    if total is not None and done < total:
        raise DownloadError(f"{url}: truncated transfer ({done:,} of {total:,} bytes); {kept}")
    if total is not None and done > total:
        bad = move_aside(part)
        raise DownloadError(
            f"{url}: {done:,} bytes arrived but {total:,} were announced; not used (moved to {bad}) "
            "— run the same command again"
        )
    return {"resumed_from": start, "total": total}


def download(
    url: str,
    dest,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    timeout: float = 30.0,
    quiet: bool = False,
    archive: bool | None = None,
    sha256_prefix: str | None = None,
) -> dict:
    """Download ``url`` to ``dest`` (resumable, checked; module docstring).

    Args:
        sha256, md5: published checksums (None: unpinned).
        sha256_prefix: the published leading hex digits of the sha256 (torch.hub's ``<name>-<hex>.pth``
            convention, as in torchvision's weight files); the file is pinned by it like by a full checksum.
        size: the published size in bytes (None: unknown); a server announcing another size is refused.
        archive: check the file as a tar / zip archive (default: from its name).
    Returns:
        :func:`check_file`'s dict plus ``"path"``, ``"resumed_from"`` (bytes already on disk), ``"pinned"`` (a
        published checksum matched) and ``"archive_ok"`` (True / None when not an archive).
    Raises:
        NetworkUnavailable: no route to the server.
        TransferStalled: the server stopped sending (the ``.part`` is kept).
        NotTheFile: an HTML page instead of the file (nothing kept).
        DownloadError: an HTTP error, a wrong offset, a truncated transfer (the ``.part`` is kept).
        ChecksumMismatch, CorruptArchive: the whole file arrived but is wrong (moved to ``.corrupt``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    kind = (
        archive_kind(dest.name)
        if archive is None
        else ("tar" if archive and not dest.name.endswith(".zip") else "zip" if archive else None)
    )
    prefix = (sha256_prefix or "").strip().lower()
    if prefix and (len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix)):
        raise ValueError(f"sha256_prefix: expected at least 6 hex digits, got {sha256_prefix!r}")
    pinned = bool(sha256 or md5 or prefix)
    if part.is_file() and size is not None and part.stat().st_size > size:
        part.unlink()  # longer than the published file: cannot be a prefix of it
    info = None
    for attempt in range(2):
        try:
            info = _transfer(url, part, dest.name, size, pinned, kind is not None, timeout, quiet)
            break
        except _Restart as r:
            if attempt:
                raise DownloadError(f"{url}: {r}; gave up") from None
            if not quiet:
                sys.stderr.write(f"  {dest.name}: {r} — dropping the .part and starting again\n")
            part.unlink(missing_ok=True)
    got = part.stat().st_size
    if size is not None and got != size:
        if got < size:
            raise DownloadError(
                f"{url}: {dest.name} has {got:,} of {size:,} bytes; {part} is kept — run the same "
                "command again to resume"
            )
        bad = move_aside(part)
        raise DownloadError(f"{dest.name}: {got:,} bytes, the published size is {size:,}; not used (moved to {bad})")
    res = check_file(part, sha256, md5)
    if prefix:
        res["ok"] = res["ok"] and res["sha256"].startswith(prefix)
        res["verified"] = res["ok"]
    if not res["ok"]:
        bad = move_aside(part)
        want = f"sha256 {sha256}" if sha256 else f"md5 {md5}" if md5 else f"a sha256 starting with {prefix}"
        have_sum = f"md5 {res['md5']}" if md5 and not sha256 else f"sha256 {res['sha256']}"
        raise ChecksumMismatch(
            f"{dest.name}: checksum mismatch (expected {want}, got {have_sum}); the download "
            f"is corrupt or truncated and was NOT used (moved to {bad}); run the command again "
            "to download it again"
        )
    archive_ok = None
    if not pinned and kind is not None:
        try:
            check_archive(part, kind)
        except (CorruptArchive, ValueError) as e:
            bad = move_aside(part)
            raise CorruptArchive(
                f"{str(e).replace(part.name, dest.name, 1)} [{url}; moved to {bad}; run the "
                "same command again to download it again]"
            ) from e
        archive_ok = True
    os.replace(part, dest)
    return {
        **res,
        "path": str(dest),
        "resumed_from": info["resumed_from"],
        "pinned": res["verified"],
        "archive_ok": archive_ok,
    }


# --------------------------------------------------------------------------------------------------------------
# extraction


def _safe_target(base: Path, name: str) -> Path:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise ValueError(f"archive member {name!r}: absolute path or '..' (path traversal); refusing to extract")
    target = (base / Path(*p.parts)).resolve() if p.parts else base.resolve()
    if target != base.resolve() and base.resolve() not in target.parents:
        raise ValueError(f"archive member {name!r} would be written outside {base}; refusing to extract")
    return target


def _merge_into(src: Path, dst: Path) -> None:
    """Move every entry of ``src`` into ``dst`` (same file system: renames), merging folders."""
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge_into(entry, target)
            entry.rmdir()
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)


def _extract_zip(archive: Path, out: Path) -> list[str]:
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        for info in infos:
            _safe_target(out, info.filename)
        for info in infos:
            target = _safe_target(out, info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:  # z.open checks each member's CRC
                shutil.copyfileobj(src, dst, CHUNK)
        return [i.filename for i in infos]


def _extract_tar(archive: Path, out: Path) -> list[str]:
    with tarfile.open(archive, "r:*") as t:
        members = t.getmembers()
        for m in members:
            target = _safe_target(out, m.name)
            if m.issym() or m.islnk():
                link = (target.parent / m.linkname) if m.issym() else out / m.linkname
                if m.linkname.startswith("/") or out.resolve() not in Path(os.path.normpath(link)).resolve().parents:
                    raise ValueError(
                        f"archive member {m.name!r}: link to {m.linkname!r} outside the target folder; refusing"
                    )
            elif not (m.isfile() or m.isdir()):
                raise ValueError(f"archive member {m.name!r}: device or special file; refusing to extract")
        kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        t.extractall(out, members=members, **kw)
        for m in members:
            if m.isfile() and (out / m.name).stat().st_size != m.size:
                raise _corrupt(archive, f"member {m.name!r} is short")
        _tar_tail_check(t, archive)
        return [m.name for m in members]


def safe_extract(archive, dest) -> list[str]:
    """Extract a tar (any compression) or zip archive into ``dest``, all or nothing.

    The archive is unpacked into a temporary folder next to ``dest`` and moved into place only after it was read to
    its end; absolute paths, ``..`` components, links that point outside and device files are refused.

    Returns:
        the member names extracted.
    Raises:
        CorruptArchive: a truncated / damaged archive (nothing is written to ``dest``).
        ValueError: not an archive, or a member that would escape ``dest`` (nothing is written).
    """
    archive, dest = Path(archive), Path(dest)
    kind = _sniff(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.unpacking-{archive.name}"
    if tmp.exists():
        shutil.rmtree(tmp)  # left by an interrupted run
    tmp.mkdir()
    try:
        try:
            names = _extract_zip(archive, tmp) if kind == "zip" else _extract_tar(archive, tmp)
        except _READ_ERRORS as e:
            raise _corrupt(archive, e) from e
        if not dest.exists():
            os.replace(tmp, dest)
        else:
            _merge_into(tmp, dest)
        return names
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
