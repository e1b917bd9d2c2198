"""Checkpointing that never leaves a half-written file behind, and resumes exactly.

detectron2's checkpointer writes ``model_XXXX.pth`` and ``last_checkpoint`` in place: a job killed
while writing leaves a truncated file that ``--resume`` then tries (and fails) to load. Here every
file is written through ``utils/atomic_io.py`` (temporary name in the same directory, flushed,
renamed over the target), so a reader sees either the old or the new file.

When the checkpointer saves a trainer that offers ``rank_state()`` (our :class:`Trainer`), every
process's data-stream position and RNG state go into the checkpoint as ``rank_states`` (a list
indexed by rank), which ``Trainer.resume_or_load`` restores. Only the main process saves
(detectron2 registers the checkpoint hook there alone), so with several processes the states are
gathered beforehand, at the scheduled checkpoint iterations, by a hook that runs on every process
(``trainer.gathered_rank_states``). Reading is
:class:`SafeCheckpointer`'s (``safe_checkpoint.py``: no code is executed from the file).
"""
import os
from typing import List

import torch
from detectron2.utils import comm

from ..utils.atomic_io import atomic_write, atomic_write_bytes
from .safe_checkpoint import SafeCheckpointer

__all__ = ["AtomicCheckpointer", "atomic_write_bytes", "state_dict_problems"]


class AtomicCheckpointer(SafeCheckpointer):
    """A :class:`SafeCheckpointer` whose ``save`` is atomic and records every process's
    data-stream and RNG state."""

    def _rank_states(self):
        trainer = self.checkpointables.get("trainer")
        if trainer is None or not hasattr(trainer, "rank_state"):
            return None
        gathered = getattr(trainer, "gathered_rank_states", None)  # by every process, this iteration
        if gathered is not None and gathered[0] == trainer.iter:
            return gathered[1]
        if comm.get_world_size() == 1:
            return [trainer.rank_state()]
        return None  # a save outside the checkpoint schedule: resuming from it warns

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        rank_states = self._rank_states()
        if rank_states is not None:
            kwargs["rank_states"] = rank_states
        if not self._is_local():  # remote stores: keep detectron2's behaviour
            return super().save(name, **kwargs)
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename):
        if not self._is_local():
            return super().tag_last_checkpoint(last_filename_basename)
        path = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write(path, lambda f: f.write(last_filename_basename), mode="w")


def state_dict_problems(checkpoint, expected, optional=()) -> List[str]:
    """Keys missing from ``checkpoint``, keys ``expected`` does not have, and shape mismatches, as
    messages naming each key (what the checkpoint converters report). Keys of ``expected`` that
    start with a prefix in ``optional`` may be missing."""
    optional = tuple(optional)
    problems = [f"missing in the checkpoint: {k}" for k in expected if k not in checkpoint and not k.startswith(optional)]
    problems += [f"not in the model: {k}" for k in checkpoint if k not in expected]
    problems += [
        f"shape of {k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in checkpoint.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    return problems
