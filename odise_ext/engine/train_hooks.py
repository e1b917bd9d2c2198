"""The training hooks of ours that :class:`~odise_ext.engine.trainer.Trainer` registers.

* :class:`EvalHook`: detectron2's periodic / final evaluation, with every random generator saved
  before and put back after each evaluation, so evaluating does not shift the training's random
  streams (an evaluated run trains on the same draws as an unevaluated one).
* :class:`GatherRankStates`: at the checkpointer's iterations, every process's ``rank_state()``
  (data-stream position, generators, logged scalars) collected for the main process's checkpoint.
"""
import functools
from typing import Callable

from detectron2.engine import hooks
from detectron2.utils import comm

from ..utils.rng_state import capture_rng_state, restore_rng_state

__all__ = ["EvalHook", "GatherRankStates", "without_touching_rng"]


def without_touching_rng(fn: Callable) -> Callable:
    """``fn`` run with the random generators captured before and restored after it."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        state = capture_rng_state()
        try:
            return fn(*args, **kwargs)
        finally:
            restore_rng_state(state)

    return wrapped


class EvalHook(hooks.EvalHook):
    """detectron2's ``EvalHook`` (every ``eval_period`` iterations and after the last one) whose
    evaluation leaves the random generators as it found them."""

    def __init__(self, eval_period: int, eval_function: Callable[[], dict], eval_after_train: bool = True):
        """
        Args:
            eval_period: iterations between evaluations (0: only after training).
            eval_function: no arguments -> nested dict of float metrics.
            eval_after_train: also evaluate after the last iteration.
        """
        super().__init__(eval_period, without_touching_rng(eval_function), eval_after_train)


class GatherRankStates(hooks.HookBase):
    """At the iterations the checkpointer saves, collect every process's ``rank_state()``
    (on every process: ``all_gather`` is collective) into ``trainer.gathered_rank_states`` as
    ``(iteration, [state of rank 0, ...])``, for the main process's checkpoint."""

    def __init__(self, period: int):
        """``period``: the checkpointer's (``SOLVER.CHECKPOINT_PERIOD``)."""
        self.period = int(period)

    def after_step(self):
        it, trainer = self.trainer.iter, self.trainer
        if (it + 1) % self.period == 0 or it >= trainer.max_iter - 1:
            state = trainer.rank_state()
            trainer.gathered_rank_states = (it, comm.all_gather(state) if comm.get_world_size() > 1 else [state])
