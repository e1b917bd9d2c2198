"""``<scheme>://<name>`` -> a local odise-ext checkpoint: download, verify, convert once, cache.

Cache (one location): ``$ODISE_EXT_ZOO_CACHE``, else ``$ODISE_EXT_CACHE/zoo``, else
``~/.cache/odise_ext/zoo``; inside it ``<scheme>/<released file name>`` (as published) and
``<scheme>/<stem>.odise_ext.pth`` (converted, what ``MODEL.WEIGHTS`` loads). Both are written
atomically, so a file there is complete; a converted file is reused as is, the released one is
verified again only when it has to be converted.

``$ODISE_EXT_ZOO_URL_BASE``: a mirror (``https://host/path``); the file is fetched from
``<base>/<released file name>`` instead of the published URLs, with the same checksum. Used by
the tests' loopback server; also how a cluster without internet access serves the zoo.
"""
import os
import shlex
from typing import List

from .catalog import ZooEntry, get_entry
from .download import ChecksumError, DownloadError, checksum_matches, download, file_lock, sha256_of

__all__ = ["CACHE_ENV", "URL_BASE_ENV", "ZooError", "cache_paths", "entry_urls", "resolve", "zoo_cache_dir"]

CACHE_ENV = "ODISE_EXT_ZOO_CACHE"
URL_BASE_ENV = "ODISE_EXT_ZOO_URL_BASE"


class ZooError(RuntimeError):
    """A zoo name that cannot be made a local checkpoint; the message says what to do."""


def zoo_cache_dir() -> str:
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = os.path.join(os.environ.get("ODISE_EXT_CACHE") or os.path.join("~", ".cache", "odise_ext"), "zoo")
    return os.path.abspath(os.path.expanduser(root))


def cache_paths(entry: ZooEntry):
    """(released file, converted file) of ``entry`` in the cache."""
    folder = os.path.join(zoo_cache_dir(), entry.scheme)
    stem = os.path.splitext(entry.file_name)[0]
    return os.path.join(folder, entry.file_name), os.path.join(folder, stem + ".odise_ext.pth")


def entry_urls(entry: ZooEntry) -> List[str]:
    base = os.environ.get(URL_BASE_ENV, "")
    return [base.rstrip("/") + "/" + entry.file_name] if base else list(entry.urls)


def _convert_command(entry: ZooEntry, original: str) -> str:
    tool = "tools/convert_odise_checkpoint.py" if entry.release_format == "odise" else "tools/convert_vpd_checkpoint.py"
    fmt = "" if entry.release_format == "odise" else f" --format {entry.release_format}"
    return f"python {tool} {shlex.quote(original)} model.pth{fmt} --config-file {entry.config}"


def _manual_steps(entry: ZooEntry, original: str, urls: List[str]) -> str:
    fetch = (f"  curl -L -C - -o {shlex.quote(original)} {shlex.quote(urls[0])}\n" if urls else
             f"  (no public URL is known: copy the released file to {original})\n")
    return (f"By hand (e.g. on a machine with internet access), download the file into the cache:\n{fetch}"
            f"and run again (it is verified and converted on first use), or convert it yourself:\n"
            f"  {_convert_command(entry, original)}\nand pass MODEL.WEIGHTS model.pth.")


def _fetch(entry: ZooEntry, original: str) -> None:
    urls = entry_urls(entry)
    if not urls:
        raise ZooError(f"{entry.uri}: its authors publish no download URL{' (' + entry.note + ')' if entry.note else ''}"
                       f"; nothing is cached at {original}.\n" + _manual_steps(entry, original, urls))
    problems = []
    for url in urls:
        try:
            download(url, original, entry.sha256)
            return
        except ChecksumError as e:
            raise ZooError(f"{entry.uri}: {e}") from None
        except DownloadError as e:
            problems.append(str(e))
    note = f" Note: {entry.note}." if entry.note else ""
    raise ZooError(f"cannot download {entry.uri}: " + "; ".join(problems)
                   + f". Nothing usable is cached at {original}.{note}\n" + _manual_steps(entry, original, urls))


def resolve(uri: str) -> str:
    """The converted checkpoint of zoo entry ``uri``, downloading and converting it if needed.

    Safe to call from every process of a multi-GPU launch at once: one downloads and converts
    (under a file lock), the others wait and reuse the result.
    """
    from ..utils.safe_load import UnsafeFileError
    from .convert import convert_release_file

    try:
        entry = get_entry(uri)
    except (KeyError, ValueError) as e:
        raise ZooError(str(e).strip("'\"")) from None
    original, converted = cache_paths(entry)
    if os.path.isfile(converted):
        return converted
    with file_lock(converted):
        if os.path.isfile(converted):  # another process finished while this one waited
            return converted
        if os.path.isfile(original):  # an earlier run's download, or a copy made by hand
            actual = sha256_of(original)
            if not checksum_matches(actual, entry.sha256):
                raise ZooError(f"{entry.uri}: {original} has sha256 {actual}, expected {entry.sha256}...: delete it "
                               "(or replace it with the published file) and run again")
        else:
            _fetch(entry, original)
        try:
            convert_release_file(original, converted, entry.release_format, entry.check_release_shapes, entry.uri)
        except UnsafeFileError:
            raise
        except (ValueError, KeyError, RuntimeError) as e:
            raise ZooError(f"{entry.uri}: {original} does not convert as a released '{entry.release_format}' "
                           f"checkpoint: {e}") from None
    return converted
