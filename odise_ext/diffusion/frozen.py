"""Frozen sub-modules: never trained, never checkpointed, always in eval mode.

Large pretrained parts (the SD UNet/VAE/text encoder, CLIP) are re-loaded from their source
(a local file, or a seeded random initialisation) every time a model is built, so a training
checkpoint only needs to say *which* source it expects. :class:`FrozenModule` implements that:

- parameters get ``requires_grad=False`` (so detectron2's optimizer builder skips them and no
  ``.grad`` is ever allocated), but gradients still flow *through* the module to its inputs;
- ``train()`` on a parent leaves the wrapped module in eval mode;
- ``state_dict()`` drops the wrapped module's tensors and stores, as ``<prefix>_extra_state``, a
  small uint8 tensor holding a JSON description of the source (a tensor, because fvcore's
  checkpointer only accepts tensors); ``load_state_dict()`` does not report the dropped keys (nor
  a missing record) as missing, and warns when the recorded source differs from the one in use.
"""
import json
import logging
from typing import Any, Dict

import torch
from torch import nn

__all__ = ["FrozenModule", "freeze", "parse_dtype"]

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_dtype(name: str) -> torch.dtype:
    """Map a config dtype string ("float32" / "bfloat16" / "float16") to a ``torch.dtype``."""
    if name not in _DTYPES:
        raise ValueError(f"Unknown dtype {name!r}; expected one of {sorted(_DTYPES)}.")
    return _DTYPES[name]


class FrozenModule(nn.Module):
    """Wraps ``module`` (available as ``.module``) and freezes it.

    Args:
        module: the module to freeze; its parameters are set to ``requires_grad=False``.
        source: JSON-serialisable description of where the weights come from (e.g.
            ``{"weights": "/path/sd-v1-3.ckpt"}``); written into checkpoints instead of the weights.
        dtype: optional dtype to cast the module to (frozen parts may run in bf16/fp16).
    """

    def __init__(self, module: nn.Module, source: Dict[str, Any], dtype: torch.dtype = None):
        super().__init__()
        floats = [p for p in module.parameters() if p.is_floating_point()]
        if dtype is not None and any(p.dtype != dtype for p in floats):
            module = module.to(dtype=dtype)
        module.requires_grad_(False)
        module.eval()
        self.module = module
        self.source = dict(source)
        # The prefix this module had in the state dict being loaded; the post hook needs it to
        # recognise this module's keys among the global missing keys.
        self._load_prefix = None
        self.register_state_dict_post_hook(FrozenModule._drop_frozen_keys)
        self.register_load_state_dict_post_hook(FrozenModule._ignore_missing_frozen_keys)

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the wrapped module's first floating point parameter."""
        for p in self.module.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def train(self, mode: bool = True):
        # Frozen weights must behave the same in training and inference (dropout off, etc.).
        super().train(False)
        return self

    def extra_repr(self) -> str:
        return f"source={json.dumps(self.source, sort_keys=True)}"

    # ---- checkpoint handling -------------------------------------------------------------
    def get_extra_state(self) -> torch.Tensor:
        blob = json.dumps(self.source, sort_keys=True).encode("utf-8")
        return torch.tensor(list(blob), dtype=torch.uint8)

    def set_extra_state(self, state: torch.Tensor) -> None:
        recorded = json.loads(bytes(state.to(torch.uint8).tolist()).decode("utf-8"))
        if recorded != self.source:
            logger.warning(
                "Frozen %s: the checkpoint was trained with frozen weights from %s, but this model "
                "uses %s.",
                type(self.module).__name__,
                json.dumps(recorded, sort_keys=True),
                json.dumps(self.source, sort_keys=True),
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._load_prefix = prefix
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @staticmethod
    def _drop_frozen_keys(module, state_dict, prefix, local_metadata):
        inner = prefix + "module."
        for key in [k for k in state_dict if k.startswith(inner)]:
            del state_dict[key]

    @staticmethod
    def _ignore_missing_frozen_keys(module, incompatible_keys):
        if module._load_prefix is None:
            return
        inner = module._load_prefix + "module."
        # The source record is informational: checkpoints converted from elsewhere may lack it.
        record = module._load_prefix + "_extra_state"
        missing = incompatible_keys.missing_keys
        missing[:] = [k for k in missing if not k.startswith(inner) and k != record]
        module._load_prefix = None


def freeze(module: nn.Module, source: Dict[str, Any], dtype: torch.dtype = None) -> FrozenModule:
    """Shorthand for :class:`FrozenModule`."""
    return FrozenModule(module, source, dtype)
