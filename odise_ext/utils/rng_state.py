"""The random-number generators a training process consumes, as checkpointable state.

``capture_rng_state`` / ``restore_rng_state`` cover Python's ``random``, numpy's global
generator, torch's CPU generator and the CUDA generator of the process's device. The state is
made of tensors, lists and numbers only, so checkpoints holding it load with
``torch.load(weights_only=True)``. ``seeded_rng`` runs a block with all three host generators
seeded, then puts back their previous states (the training loop's streams are untouched).
"""
import contextlib
import random

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "seeded_rng", "sample_seed"]


def capture_rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # this process's device (one per training process, as detectron2's launch sets it)
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def sample_seed(base_seed: int, position: int, attempt: int = 0) -> int:
    """A 32-bit seed for one sample of a stream, from the stream's seed and the sample's position.

    numpy's ``SeedSequence`` mixes the three numbers so neighbouring positions get unrelated seeds.
    """
    return int(np.random.SeedSequence([base_seed % 2**63, position, attempt]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_rng(seed: int):
    """Run a block with ``random``, numpy and torch (CPU) seeded by ``seed``; restore them after."""
    py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)  # CPU only: CUDA streams stay the loop's
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(th)
