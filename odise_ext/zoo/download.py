"""Downloading one file over HTTP(S): streamed, resumable, verified, one process at a time.

:func:`download` writes ``<target>.part`` and renames it to ``<target>`` only once it is complete
and its sha256 matches, so a file at ``<target>`` is always whole. An interrupted transfer is
resumed (HTTP ``Range`` + ``If-Range``: a server that answers 206 continues the file, one that
answers 200 sends it again) on the next attempt, in this call or a later run. A checksum mismatch
deletes the download and names the URL and both checksums. :func:`file_lock` serialises the
processes of one launch (``fcntl.flock`` on ``<target>.lock``): the first downloads, the others
wait and then find the file. The same code serves real and loopback (test) servers.
"""
import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import socket
import urllib.error
import urllib.request
from typing import Optional

from tqdm import tqdm

__all__ = ["ChecksumError", "DownloadError", "download", "file_lock", "sha256_of", "checksum_matches"]

_CHUNK = 1 << 20
_TIMEOUT_S = 60  # per socket operation (connect / read), not for the whole transfer
logger = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A download that cannot complete (unreachable server, HTTP error, repeated interruption)."""


class ChecksumError(DownloadError):
    """The downloaded bytes are not the published file."""


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def checksum_matches(actual: str, expected: Optional[str]) -> bool:
    """``expected`` is a full sha256 or its leading hex digits (None: nothing to compare)."""
    return expected is None or actual.lower().startswith(expected.lower())


@contextlib.contextmanager
def file_lock(target: str):
    """Hold an exclusive lock on ``<target>.lock`` (blocks while another process holds it)."""
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    with open(target + ".lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _read_meta(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _attempt(url: str, part: str, meta_path: str) -> None:
    """One request: resume ``part`` if the server agrees, else restart it; raise on a short read."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    meta = _read_meta(meta_path) if have else {}
    headers = {"User-Agent": "odise-ext"}
    if have and meta.get("url") == url and meta.get("validator"):
        headers["Range"] = f"bytes={have}-"
        headers["If-Range"] = meta["validator"]  # the server resumes only the same version of the file
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S) as resp:
        resumed = resp.status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        if not resumed:
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        with open(meta_path, "w") as f:
            json.dump({"url": url, "validator": validator, "total": total}, f)
        with open(part, "ab" if resumed else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=os.path.basename(part)[: -len(".part")], leave=False,
        ) as bar:
            while True:
                block = resp.read(_CHUNK)  # a connection dropped mid-file raises IncompleteRead
                if not block:
                    break
                f.write(block)
                bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
    size = os.path.getsize(part)
    if total is not None and size != total:
        raise http.client.IncompleteRead(b"", total - size)


def download(url: str, target: str, sha256: Optional[str] = None, attempts: int = 3) -> str:
    """Fetch ``url`` into ``target`` (atomically) and verify ``sha256`` (full or a prefix).

    Call it under :func:`file_lock` (``target``) when several processes may download the same file.

    Raises:
        DownloadError: the server cannot be reached (offline) or answers with an HTTP error, or
            the transfer broke off ``attempts`` times (the partial file is kept for resuming).
        ChecksumError: the complete file's sha256 differs (the download is deleted).
    """
    part, meta_path = target + ".part", target + ".part.json"
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    logger.info(f"Downloading {url} -> {target}")
    for attempt in range(1, attempts + 1):
        try:
            _attempt(url, part, meta_path)
            break
        except urllib.error.HTTPError as e:
            raise DownloadError(f"{url}: the server answered HTTP {e.code} {e.reason}") from None
        except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError,
                http.client.HTTPException) as e:
            got = os.path.getsize(part) if os.path.exists(part) else 0
            logger.warning(f"{url}: transfer interrupted after {got} bytes ({type(e).__name__}); attempt {attempt}/{attempts}")
            if attempt == attempts:
                raise DownloadError(f"{url}: the transfer broke off {attempts} times ({type(e).__name__}); "
                                    f"{got} bytes kept in {part}, resumed by the next run") from None
        except urllib.error.URLError as e:
            raise DownloadError(f"{url}: cannot reach the server ({e.reason})") from None
    actual = sha256_of(part)
    if not checksum_matches(actual, sha256):
        for p in (part, meta_path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)
        raise ChecksumError(f"{url}: checksum mismatch: expected sha256 {sha256}..., got {actual}; "
                            "the download was deleted (a changed or corrupted file, or a wrong mirror)")
    os.replace(part, target)
    with contextlib.suppress(FileNotFoundError):
        os.remove(meta_path)
    return target
