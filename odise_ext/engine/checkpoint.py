"""Checkpointing that never leaves a half-written file behind.

detectron2's checkpointer writes ``model_XXXX.pth`` and ``last_checkpoint`` in place: a job killed
while writing leaves a truncated file that ``--resume`` then tries (and fails) to load. Here every
file is written to a temporary name in the same directory, flushed to disk, and renamed over the
target (``os.replace`` is atomic on POSIX), so a reader sees either the old or the new file.
"""
import os
import tempfile

import torch
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["AtomicCheckpointer", "atomic_write_bytes"]


def _atomic_write(path, write_fn, mode="wb"):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(path, data: bytes):
    """Write ``data`` to ``path`` atomically."""
    _atomic_write(path, lambda f: f.write(data))


class AtomicCheckpointer(DetectionCheckpointer):
    """A :class:`DetectionCheckpointer` whose ``save`` is atomic (same file names and contents)."""

    def _is_local(self):
        return "://" not in str(self.save_dir)

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        if not self._is_local():  # remote stores: keep detectron2's behaviour
            return super().save(name, **kwargs)
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        _atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename):
        if not self._is_local():
            return super().tag_last_checkpoint(last_filename_basename)
        path = os.path.join(self.save_dir, "last_checkpoint")
        _atomic_write(path, lambda f: f.write(last_filename_basename), mode="w")
