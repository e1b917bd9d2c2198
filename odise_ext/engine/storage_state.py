"""The recent history of logged scalars, as checkpointable state.

``metrics.json`` and the console show medians over the last iterations (detectron2's writers use
a window of 20). A resumed run starts a fresh ``EventStorage``, so its first logged medians would
cover only the iterations after the resume; putting back the last ``KEEP`` values of each scalar
(and the running averages) makes them what the uninterrupted run logs. The latest value of each
unsmoothed scalar is kept too: an evaluation's results logged before the checkpoint but not yet written to
``metrics.json`` (writers run every 20 iterations) are written by the resumed run.
"""
from detectron2.utils.events import EventStorage

__all__ = ["KEEP", "storage_state", "restore_storage"]

KEEP = 100


def storage_state(storage: EventStorage) -> dict:
    return {
        name: {
            "data": [[float(v), float(i)] for v, i in buf._data[-KEEP:]],
            "count": int(buf._count),
            "global_avg": float(buf._global_avg),
            "smoothing_hint": bool(storage._smoothing_hints.get(name, True)),
            "latest": [float(v) for v in storage._latest_scalars[name]] if name in storage._latest_scalars else None,
        }
        for name, buf in storage._history.items()
    }


def restore_storage(storage: EventStorage, state: dict, all_latest: bool = False) -> None:
    """``all_latest``: restore every scalar's latest value (for a write that follows at once)."""
    for name, s in state.items():
        buf = storage._history[name]
        buf._data = [(v, i) for v, i in s["data"]]
        buf._count, buf._global_avg = s["count"], s["global_avg"]
        storage._smoothing_hints[name] = s["smoothing_hint"]
        # only the once-logged (unsmoothed) values such as evaluation results: per-iteration
        # streams are logged again, and a stale timing value (the timer skips the first
        # iterations after a start) would make a line of its own
        if s.get("latest") is not None and (all_latest or not s["smoothing_hint"]):
            value, itr = s["latest"]
            storage._latest_scalars[name] = (value, int(itr))
