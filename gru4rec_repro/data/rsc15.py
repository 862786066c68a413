"""The real RSC15 clicks: download, verify, extract (SPEC.md section 1).

:func:`fetch` produces ``yoochoose-clicks.dat`` from one of

* ``url`` (default: the official archive): downloaded to ``<name>.part`` with
  a progress bar; a broken transfer is resumed with an HTTP Range request (or
  restarted when the server ignores Range), up to ``retries`` times; the size
  is checked against Content-Length and, when given, ``expected_archive_size``;
  only a complete archive is renamed to its final name;
* ``archive``: a local copy of the 7z archive (users behind firewalls);
* ``clicks``: a local copy of the clicks file itself (used where it is).

The clicks file is extracted into a temporary folder next to ``dest`` and
renamed into place only after its row count checks out, so a partial file
never sits under a final name. There is no published checksum; size and row
count are what can be verified.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from pathlib import Path

import py7zr
from tqdm.auto import tqdm

from .errors import DataError

log = logging.getLogger(__name__)

RSC15_URL = "https://s3-eu-west-1.amazonaws.com/yc-rdata/yoochoose-data.7z"
CLICKS_NAME = "yoochoose-clicks.dat"
RSC15_ROWS = 33_003_944
RSC15_CLICKS_BYTES = 1_486_798_186
_BLOCK = 1 << 20


def count_rows(path: str | os.PathLike) -> int:
    """Number of non-empty lines of a file (fast, binary)."""
    rows = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            rows += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        rows += 1  # no newline after the last line
    return rows


def _check_rows(path: Path, expected_rows: int | None, what: Path) -> None:
    if expected_rows is None:
        return
    rows = count_rows(path)
    if rows != expected_rows:
        raise DataError(what, f"has {rows:,} rows of clicks, expected {expected_rows:,} "
                        "(truncated or not the official file)")


def _total_size(response, offset: int) -> int | None:
    """Full size of the remote file from Content-Range or Content-Length."""
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        if total.isdigit():
            return int(total)
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit():
        return int(length) + (offset if response.status == 206 else 0)
    return None


def download(url: str, archive: Path, *, expected_size: int | None = None, retries: int = 5,
             progress: bool = True, backoff: float = 1.0, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``archive`` via ``archive.part``, resuming broken transfers."""
    part = archive.with_name(archive.name + ".part")
    archive.parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if offset and response.status != 206:
                    log.info("server ignored the Range request; restarting %s from 0", url)
                    offset = 0
                total = _total_size(response, offset)
                if expected_size is not None and total is not None and total != expected_size:
                    part.unlink(missing_ok=True)
                    raise DataError(url, f"the server announces {total:,} bytes, expected "
                                    f"{expected_size:,}: refusing this archive")
                with open(part, "ab" if offset else "wb") as out, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, desc=archive.name,
                    disable=not progress,
                ) as bar:
                    while block := response.read(_BLOCK):
                        out.write(block)
                        bar.update(len(block))
            size = part.stat().st_size
            if total is not None and size < total:
                raise ConnectionError(f"transfer ended at {size:,} of {total:,} bytes")
            if total is not None and size > total:
                part.unlink(missing_ok=True)
                raise DataError(url, f"received {size:,} bytes, more than the announced {total:,}")
            break
        except DataError:
            raise
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.exists():  # our Range was past the end: start over
                part.unlink()
            elif err.code < 500:
                part.unlink(missing_ok=True)
                raise DataError(url, f"download failed: HTTP {err.code} {err.reason}") from err
            attempt = _retry_or_raise(url, err, attempt, retries, backoff, part)
        except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError, OSError) as err:
            attempt = _retry_or_raise(url, err, attempt, retries, backoff, part)
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink(missing_ok=True)
        raise DataError(url, f"downloaded {size:,} bytes, expected {expected_size:,}: refusing this archive")
    os.replace(part, archive)
    log.info("downloaded %s (%d bytes)", archive, size)
    return archive


def _retry_or_raise(url, err, attempt, retries, backoff, part) -> int:
    attempt += 1
    if attempt > retries:
        raise DataError(url, f"download failed after {retries} retries: {err} "
                        f"(partial data kept in {part} for a later resume)") from err
    wait = backoff * 2 ** (attempt - 1)
    log.warning("download of %s broke (%s); retry %d/%d in %.1f s", url, err, attempt, retries, wait)
    time.sleep(wait)
    return attempt


def extract_clicks(archive: Path, dest: Path, *, expected_rows: int | None) -> Path:
    """Extract the clicks member of ``archive`` to ``dest`` (temp folder, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        try:
            with py7zr.SevenZipFile(archive, mode="r") as z:
                members = [n for n in z.getnames() if Path(n).name == CLICKS_NAME]
                if not members:
                    raise DataError(archive, f"the archive holds no {CLICKS_NAME} "
                                    f"(found: {', '.join(z.getnames()[:10])})")
                z.extract(path=tmpdir, targets=members[:1])
        except (py7zr.exceptions.Bad7zFile, py7zr.exceptions.ArchiveError, EOFError, OSError) as err:
            raise DataError(archive, f"cannot read the 7z archive: {err}") from err
        extracted = tmpdir / members[0]
        _check_rows(extracted, expected_rows, archive)
        os.replace(extracted, dest)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    log.info("extracted %s to %s", CLICKS_NAME, dest)
    return dest


def fetch(
    dest: str | os.PathLike,
    *,
    url: str = RSC15_URL,
    archive: str | os.PathLike | None = None,
    clicks: str | os.PathLike | None = None,
    expected_archive_size: int | None = None,
    expected_rows: int | None = RSC15_ROWS,
    retries: int = 5,
    progress: bool = True,
    download_dir: str | os.PathLike | None = None,
    backoff: float = 1.0,
) -> Path:
    """Produce the RSC15 clicks file and return its path (see the module docstring).

    With ``clicks`` the local file is checked and returned as it is (no copy).
    With ``archive`` it is extracted to ``dest``. Otherwise ``url`` is
    downloaded into ``download_dir`` (default: ``dest``'s folder) and
    extracted. An existing ``dest`` is reused after its row count is checked.
    """
    dest = Path(dest)
    if clicks is not None:
        clicks = Path(clicks)
        if not clicks.is_file():
            raise DataError(clicks, "no such clicks file")
        _check_rows(clicks, expected_rows, clicks)
        return clicks
    if dest.is_file():
        _check_rows(dest, expected_rows, dest)
        return dest
    if archive is not None:
        archive = Path(archive)
        if not archive.is_file():
            raise DataError(archive, "no such archive file")
        size = archive.stat().st_size
        if expected_archive_size is not None and size != expected_archive_size:
            raise DataError(archive, f"is {size:,} bytes, expected {expected_archive_size:,}")
        return extract_clicks(archive, dest, expected_rows=expected_rows)
    folder = Path(download_dir) if download_dir is not None else dest.parent
    name = Path(urllib.parse.urlparse(url).path).name or "yoochoose-data.7z"
    archive = folder / name
    if not archive.is_file():
        download(url, archive, expected_size=expected_archive_size, retries=retries,
                 progress=progress, backoff=backoff)
    elif expected_archive_size is not None and archive.stat().st_size != expected_archive_size:
        raise DataError(archive, f"is {archive.stat().st_size:,} bytes, expected {expected_archive_size:,}")
    return extract_clicks(archive, dest, expected_rows=expected_rows)
