"""Writing files so that a reader never sees half of one.

A job killed mid-write, or a full disk, must not leave a truncated ``config.yaml``, checkpoint or
predictions file for a later run (or a user) to trip over. Every file is written to a temporary
name in the same directory (``.<name>.<random>.tmp``), flushed to disk, and renamed over the
target (``os.replace`` is atomic on POSIX), so readers see either the old or the new file. On any
error the temporary file is removed and the error names the target path. Files get the mode a
plain ``open(path, "w")`` would give them (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
"""
import contextlib
import logging
import os
import re
import shutil
import tempfile

__all__ = [
    "atomic_open",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_save_image",
    "remove_orphaned_tmp_files",
    "publish_files",
]

_TMP_SUFFIX = ".tmp"
# ".<target name>.<8 characters from mkstemp>.tmp"
_TMP_PATTERN = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def _default_file_mode():
    """``0o666`` less the process umask (what ``open(path, "w")`` gives a new file)."""
    try:  # Linux: read the umask without changing it (other threads may be creating files)
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _named(err: OSError, path: str) -> OSError:
    """``err`` re-raised with ``path`` as its file name (a full disk names the temp file, or none)."""
    return type(err)(err.errno, f"could not write {path}: {err.strerror or err}", path)


def _os_error_in_chain(e):
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """``with atomic_open(path, "w") as f: ...``: the file appears at ``path`` only complete.

    ``mode`` is a write mode (``"w"``, ``"wb"``, ``"x"`` ...); ``kwargs`` go to :func:`open`.
    """
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes whole files; mode {mode!r} is not a write mode")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=_TMP_SUFFIX, dir=directory)
    except OSError as e:
        raise _named(e, path) from e
    try:
        os.fchmod(fd, _default_file_mode())
        with os.fdopen(fd, mode.replace("x", "w"), **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        cause = _os_error_in_chain(e)
        if cause is not None:  # e.g. torch.save turns a failed write into a RuntimeError
            raise _named(cause, path) from e
        raise


def atomic_write(path, write_fn, mode="wb"):
    """Call ``write_fn(f)`` on a file opened with ``mode``; the result replaces ``path`` atomically."""
    with atomic_open(path, mode) as f:
        write_fn(f)


def atomic_write_bytes(path, data: bytes):
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(data))


def atomic_save_image(image, path, **kwargs):
    """``PIL.Image.save`` to ``path`` atomically; the format comes from the extension (PNG if unknown)."""
    from PIL import Image

    fmt = kwargs.pop("format", None) or Image.registered_extensions().get(os.path.splitext(str(path))[1].lower(), "PNG")
    with atomic_open(path, "wb") as f:
        image.save(f, format=fmt, **kwargs)


def remove_orphaned_tmp_files(root) -> int:
    """Delete the temporary files of writes that were killed mid-way under ``root``; their count.

    Only names of the form written by :func:`atomic_open` are touched. Call it before a run
    starts writing into ``root`` (a concurrent writer's temp file would look orphaned).
    """
    removed = 0
    if not root or not os.path.isdir(root):
        return 0
    for directory, _, files in os.walk(root):
        for name in files:
            if _TMP_PATTERN.match(name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, name))
                    removed += 1
    if removed:
        logging.getLogger(__name__).info(f"Removed {removed} unfinished temporary file(s) under {root}")
    return removed


def publish_files(staging_dir, target_dir) -> list:
    """Copy every file of ``staging_dir`` (written there by code that writes in place) to the
    same name in ``target_dir``, each atomically and in the order they were written, then delete it from ``staging_dir``; the
    published paths. A failed copy removes the rest of the staged files and raises naming its
    target (``target_dir`` keeps the previous version of that file)."""
    files = [e for e in os.scandir(staging_dir) if e.is_file()]
    names = [e.name for e in sorted(files, key=lambda e: (e.stat().st_mtime_ns, e.name))]  # as written
    published = []
    try:
        for name in names:
            source, target = os.path.join(staging_dir, name), os.path.join(target_dir, name)
            with open(source, "rb") as src, atomic_open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.remove(source)
            published.append(target)
    finally:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(staging_dir, name))
    return published

