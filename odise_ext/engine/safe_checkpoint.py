"""detectron2's checkpointer reading every file without executing code, and resuming only from a
``last_checkpoint`` that names a checkpoint in its own folder.

:class:`SafeCheckpointer` is what the project's trainer, predictors and tools load weights with
(``utils/safe_load.py``: torch's weights-only unpickler, numpy arrays allowed, zip bombs refused);
detectron2's own ``DetectionCheckpointer`` is left as it is (nothing is patched). On resume, a
``last_checkpoint`` that is a link, a folder, or holds anything but a bare file name of a file in
``OUTPUT_DIR`` is refused naming the file (its content is never printed), and a truncated
checkpoint is named as such with what to do.
"""
import os

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..utils.safe_load import UnsafeFileError, safe_pickle_load, safe_torch_load
from .weights_file import check_weights_file

__all__ = ["SafeCheckpointer", "model_bytes"]

_MAX_TAG_BYTES = 1024


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of ``model``'s parameters and buffers (what a checkpoint of it may hold)."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


class SafeCheckpointer(DetectionCheckpointer):
    """A :class:`DetectionCheckpointer` that reads ``.pkl`` / ``.pyth`` / ``.pth`` / ``.safetensors``
    files without executing code and validates ``last_checkpoint`` before resuming."""

    def _is_local(self):
        return "://" not in str(self.save_dir)

    def _load_file(self, filename):
        if filename.endswith(".pkl"):
            data = safe_pickle_load(filename)
            if not isinstance(data, dict):
                raise ValueError(f"{filename!r} holds a {type(data).__name__}, expected a dict of weights")
            if "model" in data and "__author__" in data:  # detectron2 model-zoo format
                return data
            if "blobs" in data:  # Caffe2 / Detectron1 model zoo
                data = data["blobs"]
            data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
            return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
        if filename.endswith(".pyth"):  # pycls
            data = self._torch_load(filename)
            if "model_state" not in data:
                raise ValueError(f"Cannot load .pyth file {filename}; pycls checkpoints must contain 'model_state'.")
            state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        if filename.endswith(".safetensors"):
            from safetensors.torch import load_file

            return {"model": load_file(filename)}
        return super()._load_file(filename)  # .pth: through _torch_load below

    def _torch_load(self, f):
        return safe_torch_load(f, model_bytes=model_bytes(self.model))

    def _tag_file(self):
        return os.path.join(self.save_dir, "last_checkpoint")

    def has_checkpoint(self) -> bool:
        if not self._is_local():
            return super().has_checkpoint()
        return os.path.lexists(self._tag_file())  # a dangling link is refused, not ignored

    def get_checkpoint_file(self) -> str:
        """The checkpoint ``OUTPUT_DIR/last_checkpoint`` names; ``ValueError`` naming the file when
        it is not a regular file holding the bare name of a checkpoint file in ``OUTPUT_DIR``."""
        if not self._is_local():
            return super().get_checkpoint_file()
        tag = self._tag_file()
        fix = (f"It must be a regular file written by training, holding the name of a checkpoint in {self.save_dir} "
               f"(e.g. model_0000999.pth): delete it and write that name into it, or run without --resume.")
        if os.path.islink(tag):
            raise ValueError(f"{tag} is a symbolic link, not a regular file. {fix}")
        if not os.path.isfile(tag):
            raise ValueError(f"{tag} is not a regular file (a directory?). {fix}")
        size = os.path.getsize(tag)
        if size > _MAX_TAG_BYTES:
            raise ValueError(f"{tag} is {size} bytes, too long for a checkpoint name. {fix}")
        with open(tag, "rb") as f:
            raw = f.read()
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ValueError(f"{tag} is not text. {fix}") from None
        if not name or any(c in name for c in "/\\\n\r\0") or name.startswith("."):
            raise ValueError(f"{tag} does not hold a bare checkpoint file name (no folders, no '..'). {fix}")
        path = os.path.join(self.save_dir, name)
        if not os.path.isfile(path):
            raise ValueError(f"{tag} names a file that does not exist in {self.save_dir}. {fix}")
        return path

    def resume_or_load(self, path, *, resume: bool = True):
        if not (resume and self.has_checkpoint()):
            return self.load(path, checkpointables=[])
        last = self.get_checkpoint_file()
        try:
            if self._is_local():
                check_weights_file(last, key="the checkpoint named by last_checkpoint,")
            return self.load(last)
        except UnsafeFileError:
            raise
        except (ValueError, EOFError, RuntimeError) as e:
            size = os.path.getsize(last) if os.path.isfile(last) else 0
            raise ValueError(
                f"Cannot resume: the checkpoint {last} ({size} bytes) is truncated or damaged ({e}). Delete it, or "
                f"write the name of the previous checkpoint into {self._tag_file()}, then resume again.") from None
