"""A trainable counterpart of :class:`~odise_ext.diffusion.frozen.FrozenModule` (VPD's tuned UNet).

VPD and Meta-Prompts fine-tune the SD UNet at a reduced learning rate. The diffusion
feature extractor expects its UNet behind the ``FrozenModule`` interface (``.module``, ``.dtype``,
``forward``); :class:`TunedModule` offers the same interface but leaves the weights trainable, in
float32, following ``train()``/``eval()``, and saved in checkpoints (they change during training,
so they cannot be re-created from the source as frozen weights are).

:class:`RecordingCheckpoint` is the activation-checkpointing function installed in the UNet. While
cross-attention maps are recorded, the recomputation in the backward pass must take the same code
path as the forward (explicit softmax instead of SDPA), otherwise torch's non-reentrant checkpoint
sees different saved tensors; it therefore re-activates the recorder during recomputation.
"""
from contextlib import nullcontext
from typing import Any, Dict, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["TunedModule", "RecordingCheckpoint"]


class TunedModule(nn.Module):
    """Wraps a module (as ``.module``) that is fine-tuned.

    Args:
        module: the module; its parameters get ``requires_grad=True`` and float32.
        source: JSON-able description of its initial weights (kept for logs, like FrozenModule).
    """

    def __init__(self, module: nn.Module, source: Dict[str, Any]):
        super().__init__()
        # Trainable weights stay float32 whatever MODEL.DIFFUSION.DTYPE says (optimizer state and
        # small lr updates need the precision).
        module = module.float()
        module.requires_grad_(True)
        self.module = module
        self.source = dict(source)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"tuned, initial weights={self.source}"


class RecordingCheckpoint:
    """``gradient_checkpointing_func`` for diffusers models (non-reentrant torch checkpoint).

    Args:
        recorder: a :class:`CrossAttentionRecorder` of the same UNet, or None. When given, the
            recomputation of a checkpointed block runs inside ``recorder.record()`` (into a
            throw-away list), i.e. through the same explicit-attention path as the forward.
    """

    def __init__(self, recorder: Optional[Any] = None):
        self.recorder = recorder

    def _contexts(self):
        recompute = self.recorder.record() if self.recorder is not None else nullcontext()
        return nullcontext(), recompute

    def __call__(self, module, *args):
        return checkpoint(module.__call__, *args, use_reentrant=False, context_fn=self._contexts)
