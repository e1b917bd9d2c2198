"""gather_on_main (utils.gather): per-process record lists concatenated in rank order on the main
process, as every evaluator collects its records."""
from detectron2.utils import comm

from odise_ext.utils.gather import gather_on_main


def test_gather_on_main_concatenates_in_rank_order(monkeypatch):
    other_rank = {0: ["a1"], 1: [10, 11]}  # what rank 1 holds, per argument position
    calls = []

    def fake_gather(data, dst=0):
        calls.append(dst)
        return [data, other_rank[(len(calls) - 1) % 2]]

    monkeypatch.setattr(comm, "gather", fake_gather)
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    monkeypatch.setattr(comm, "is_main_process", lambda: True)
    assert gather_on_main(["a0"], [1, 2]) == (["a0", "a1"], [1, 2, 10, 11])
    assert calls == [0, 0]
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert gather_on_main(["a0"], [1, 2]) is None


def test_gather_on_main_single_process_is_not_collective(monkeypatch):
    def no_collective(*args, **kwargs):
        raise AssertionError("a single-process evaluation must not gather")

    monkeypatch.setattr(comm, "gather", no_collective)
    records = [1, 2]
    (out,) = gather_on_main(records, distributed=False)
    assert out == [1, 2] and out is not records
