"""A training data stream that a checkpoint can stop and restart at the same sample.

detectron2's train loader is an infinite stream: sampler -> dataset -> mapper (random
augmentations) -> worker processes -> batches (grouped by aspect ratio). Its position and
randomness live in the sampler's generator, the workers' seeds and the grouping buffers, none of
which a checkpoint records, so ``--resume`` starts the stream over. Here:

* every sample has a **position** ``p`` in this process's share of the sampler's (deterministic,
  seeded) index stream; the mapper runs with ``random`` / numpy / torch seeded from
  ``(seed, p)``, so a sample's augmentation depends on nothing else (not on the worker that
  maps it, nor on what was mapped before);
* batches are formed in the main process from the samples in position order (worker ``w`` of
  ``n`` maps every ``n``-th sample, and the DataLoader returns them in order);
* :class:`ResumableBatches` records which positions went into batches: its ``state_dict`` is the
  sampler seed, the next position to read, and the samples still waiting in the aspect-ratio
  buckets. Restarting from it replays the waiting samples, then continues at the next position.
"""
import itertools
import logging

import torch
import torch.utils.data as torchdata
from detectron2.data import DatasetFromList
from detectron2.data.build import _train_loader_from_config, worker_init_reset_seed
from detectron2.utils import comm

from ..utils.rng_state import sample_seed, seeded_rng

__all__ = ["PositionedSampleStream", "ResumableBatches", "build_resumable_train_loader"]

_MAX_RETRIES = 10


class PositionedSampleStream(torchdata.IterableDataset):
    """Yields ``(position, index, mapped dict)`` for positions ``replay`` then ``start, start+1, ...``.

    Args:
        dataset: a list of dataset dicts (or any indexable).
        sampler: an infinite sampler whose index stream is a function of its ``_seed``
            (detectron2's ``TrainingSampler``, ``RepeatFactorTrainingSampler`` ...).
        mapper: dataset dict -> model input dict, or None to skip the sample.
        seed (int): mixed into every sample's augmentation seed.
    """

    def __init__(self, dataset, sampler, mapper, seed):
        self.dataset, self.sampler, self.mapper, self.seed = dataset, sampler, mapper, int(seed)
        self.start = 0
        self.replay = []  # [(position, index)] positions < start to produce first

    def _indices(self):
        """``(position, index)`` pairs of the stream: replayed ones, then from ``start`` on."""
        yield from self.replay
        # The sampler is cheap to iterate (a seeded permutation per epoch): skipping is exact.
        stream = itertools.islice(iter(self.sampler), self.start, None)
        yield from zip(itertools.count(self.start), stream)

    def map_sample(self, position, index):
        for attempt in range(_MAX_RETRIES + 1):
            with seeded_rng(sample_seed(self.seed, position, attempt)):
                data = self.mapper(self.dataset[index])
                if data is not None:
                    return data
                fallback = int(torch.randint(len(self.dataset), ()))
            logging.getLogger(__name__).warning(
                f"the mapper skipped dataset item {index} (stream position {position}); trying item {fallback}"
            )
            index = fallback
        raise RuntimeError(f"the mapper skipped {_MAX_RETRIES + 1} dataset items in a row at stream position {position}")

    def __iter__(self):
        info = torchdata.get_worker_info()
        pairs = self._indices()
        if info is not None and info.num_workers > 1:
            # the DataLoader reads workers round robin: worker w gets the ordinals w, w+n, ...
            pairs = itertools.islice(pairs, info.id, None, info.num_workers)
        for position, index in pairs:
            yield position, index, self.map_sample(position, index)


def _unchanged(sample):
    return sample


class ResumableBatches:
    """Batches (lists of ``batch_size`` mapped dicts) of a :class:`PositionedSampleStream`.

    With ``aspect_ratio_grouping`` a batch holds images that are all landscape or all portrait
    (detectron2's two groups); otherwise consecutive samples. Iterate it once (it is infinite).
    """

    def __init__(self, stream, batch_size, *, aspect_ratio_grouping, num_workers):
        self.stream, self.batch_size = stream, batch_size
        self.aspect_ratio_grouping, self.num_workers = aspect_ratio_grouping, num_workers
        self._buckets = [[], []]  # [(position, index, data)]
        self._next = 0

    def state_dict(self):
        pending = sorted((p, i) for bucket in self._buckets for p, i, _ in bucket)
        return {
            "sampler_seed": int(self.stream.sampler._seed),
            "sample_seed": int(self.stream.seed),
            "next_position": int(self._next),
            "pending": [[int(p), int(i)] for p, i in pending],
        }

    def load_state_dict(self, state):
        self.stream.sampler._seed = int(state["sampler_seed"])
        self.stream.seed = int(state["sample_seed"])
        self.stream.start = self._next = int(state["next_position"])
        self.stream.replay = [(int(p), int(i)) for p, i in state["pending"]]
        self._buckets = [[], []]

    def _samples(self):
        if self.num_workers == 0:
            return iter(self.stream)
        loader = torchdata.DataLoader(
            self.stream,
            batch_size=None,
            collate_fn=_unchanged,  # the default would turn tuples into lists, arrays into tensors
            num_workers=self.num_workers,
            worker_init_fn=worker_init_reset_seed,
            # its own generator: creating the iterator must not draw from the training RNG
            generator=torch.Generator().manual_seed(self.stream.seed),
            persistent_workers=False,
        )
        return iter(loader)

    def __iter__(self):
        for position, index, data in self._samples():
            self._next = max(self._next, position + 1)
            bucket_id = int(data["width"] <= data["height"]) if self.aspect_ratio_grouping else 0
            bucket = self._buckets[bucket_id]
            bucket.append((position, index, data))
            if len(bucket) == self.batch_size:
                batch = [d for _, _, d in bucket]
                del bucket[:]
                yield batch


def build_resumable_train_loader(cfg, mapper, dataset=None):
    """detectron2's train loader for ``cfg`` (datasets, sampler, batch size, workers, grouping),
    as :class:`ResumableBatches`; ``dataset``: the training dicts if already loaded (default: read
    from ``cfg.DATASETS.TRAIN``)."""
    args = _train_loader_from_config(cfg, mapper=mapper, dataset=dataset)
    sampler, dataset = args["sampler"], args["dataset"]
    if isinstance(dataset, list):  # a fresh copy per read: mappers may edit the dict they get
        dataset = DatasetFromList(dataset, copy=False)
    if sampler is None or not hasattr(sampler, "_seed"):
        raise ValueError(
            f"DATALOADER.SAMPLER_TRAIN={cfg.DATALOADER.SAMPLER_TRAIN}: exact resume needs a seeded "
            f"infinite sampler (TrainingSampler, RepeatFactorTrainingSampler)"
        )
    world = comm.get_world_size()
    if args["total_batch_size"] % world:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={args['total_batch_size']} is not divisible by {world} processes")
    stream = PositionedSampleStream(dataset, sampler, args["mapper"], seed=sampler._seed + comm.get_rank())
    return ResumableBatches(
        stream,
        args["total_batch_size"] // world,
        aspect_ratio_grouping=args["aspect_ratio_grouping"],
        num_workers=args["num_workers"],
    )
