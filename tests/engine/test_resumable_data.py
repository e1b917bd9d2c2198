"""The resumable training stream: stopping at any batch and restarting from its state_dict gives
the batches an uninterrupted stream gives, whatever the number of worker processes."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from detectron2.data.samplers import TrainingSampler

from odise_ext.data.resumable import PositionedSampleStream, ResumableBatches
from odise_ext.utils.rng_state import capture_rng_state, restore_rng_state, seeded_rng

# 13 items, mixed aspect ratios, so the aspect-ratio buckets hold samples across batch boundaries
DATASET = [{"id": i, "width": 10 + 7 * (i % 3), "height": 12} for i in range(13)]


def _mapper(d):
    """A random augmentation drawing from the three host generators; skips item 5 (None)."""
    if d["id"] == 5:
        return None
    return {**d, "aug": (random.random(), float(np.random.rand()), float(torch.rand(())))}


def _batches(num_workers, state=None, grouping=True):
    stream = PositionedSampleStream(DATASET, TrainingSampler(len(DATASET), seed=11), _mapper, seed=11)
    batches = ResumableBatches(stream, 3, aspect_ratio_grouping=grouping, num_workers=num_workers)
    if state is not None:
        batches.load_state_dict(state)
    return batches


def _take(it, n):
    return [[(d["id"], d["aug"]) for d in next(it)] for _ in range(n)]


@pytest.mark.parametrize("grouping", [True, False])
def test_restart_from_state_matches_uninterrupted_stream(grouping):
    reference = _take(iter(_batches(0, grouping=grouping)), 12)
    for stop in (1, 4, 7):
        first = _batches(0, grouping=grouping)
        it = iter(first)
        head = _take(it, stop)
        state = first.state_dict()
        tail = _take(iter(_batches(0, state, grouping=grouping)), 12 - stop)
        assert head + tail == reference, f"stopped after {stop} batches"
    # grouping: every batch is one aspect-ratio group; the grouping holds samples over (so replays them)
    if grouping:
        for batch in reference:
            assert len({DATASET[i]["width"] > DATASET[i]["height"] for i, _ in batch}) == 1
        assert any(_batches_state_after(k)["pending"] for k in range(1, 6))
    # item 5 is skipped (the mapper returns None) and replaced by another item
    assert all(i != 5 for batch in reference for i, _ in batch)


def _batches_state_after(k):
    b = _batches(0)
    it = iter(b)
    _take(it, k)
    return b.state_dict()


@pytest.mark.timeout(120)
def test_worker_processes_give_the_same_stream_and_resume():
    reference = _take(iter(_batches(0)), 8)
    first = _batches(2)
    it = iter(first)
    head = _take(it, 3)
    state = first.state_dict()
    del it
    tail = _take(iter(_batches(1, state)), 5)
    assert head + tail == reference


def test_stream_leaves_the_training_generators_alone():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    before = capture_rng_state()
    _take(iter(_batches(0)), 3)
    after = capture_rng_state()
    assert torch.equal(before["torch"], after["torch"])
    assert torch.equal(before["numpy"]["keys"], after["numpy"]["keys"]) and before["numpy"]["pos"] == after["numpy"]["pos"]
    assert before["python"] == after["python"]


def test_rng_state_round_trip_through_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = capture_rng_state()
    torch.save({"rng": state}, tmp_path / "s.pth")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(torch.load(tmp_path / "s.pth", weights_only=True)["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_seeded_rng_draws_depend_on_seed_only():
    with seeded_rng(5):
        a = (random.random(), np.random.rand(), torch.rand(()))
    torch.rand(10)
    np.random.rand(3)
    with seeded_rng(5):
        b = (random.random(), np.random.rand(), torch.rand(()))
    assert a == b


def test_evaluation_during_training_leaves_the_generators_alone():
    from detectron2.utils.events import EventStorage

    from odise_ext.engine.train_hooks import EvalHook

    def evaluate():  # draws from every generator, like a test loader's iterator and a model would
        drawn = random.random(), np.random.rand(), torch.rand(())
        return {"metric": float(sum(float(x) for x in drawn))}

    hook = EvalHook(2, evaluate)
    hook.trainer = SimpleNamespace(iter=3, max_iter=10, storage=EventStorage())  # after iteration 3: evaluates

    torch.manual_seed(4)
    np.random.seed(4)
    random.seed(4)
    expected = (random.random(), np.random.rand(), torch.rand(()))
    torch.manual_seed(4)
    np.random.seed(4)
    random.seed(4)
    hook.after_step()
    assert (random.random(), np.random.rand(), torch.rand(())) == expected
    assert "metric" in hook.trainer.storage.latest()  # the evaluation did run
