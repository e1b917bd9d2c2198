"""Checks of inputs: the error type of bad user input, and checks of tensor contents that never
stall an accelerator.

A check such as ``if (labels < 0).any(): raise ...`` copies a flag from the GPU to the CPU and
waits for every queued kernel first, which serialises the forward pass. :func:`check_all` keeps
the check and its message but makes it free where that matters:

- CPU tensors (data-loader output, tests) are checked at once and raise ``ValueError(message)``;
- tensors on an accelerator get an asynchronous device-side assertion (``torch._assert_async``):
  the program still stops on bad input, at the next synchronising call (PyTorch reports a
  device-side assert; run with ``CUDA_LAUNCH_BLOCKING=1`` or on CPU to see ``message``).
"""
import torch

__all__ = ["InputError", "check_all"]


class InputError(ValueError):
    """Bad user input (an uploaded image, typed boxes, ...): the message says what is wrong and
    how to fix it, and is shown to the user as is (web page, command-line flag)."""


def check_all(ok: torch.Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless every element of the bool tensor ``ok`` is true.

    Args:
        ok: bool tensor of any shape (an empty one passes).
        message: the error; say what is wrong with which input.
    """
    if ok.device.type == "cpu":
        if not bool(ok.all()):
            raise ValueError(message)
        return
    torch._assert_async(ok.all(), message)
