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

Bad samples: a dataset item whose image cannot be decoded (:class:`UndecodableImageError`,
raised by the mappers' reader) is skipped like an item the mapper drops (returns None): the
position takes the next item drawn from its own seeded generator, so a resumed run draws the same
replacement and never stops on it. Each skipped item is logged (file, record) and counted; more
than ``max_bad_samples`` distinct ones (``DATA.MAX_BAD_SAMPLES``) stop training with their list.
The count is part of the state, so it carries over a resume.
"""
import itertools
import logging

import torch
import torch.utils.data as torchdata
from detectron2.data import DatasetFromList
from detectron2.data.build import _train_loader_from_config, worker_init_reset_seed
from detectron2.utils import comm

from ..utils.rng_state import sample_seed, seeded_rng
from .image_io import UndecodableImageError

__all__ = ["PositionedSampleStream", "ResumableBatches", "build_resumable_train_loader"]

_MAX_RETRIES = 10


class PositionedSampleStream(torchdata.IterableDataset):
    """Yields ``(position, index, mapped dict, skipped)`` for positions ``replay`` then ``start,
    start+1, ...``; ``skipped``: ``[(dataset index, error)]`` of undecodable items replaced there.

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
        """``(mapped dict, skipped)`` of ``position``: dataset item ``index``, or the next item of
        the position's seeded draw while items are dropped (None) or undecodable."""
        skipped = []
        for attempt in range(_MAX_RETRIES + 1):
            with seeded_rng(sample_seed(self.seed, position, attempt)):
                try:
                    data, error = self.mapper(self.dataset[index]), None
                except UndecodableImageError as e:
                    data, error = None, str(e)
                if data is not None:
                    return data, skipped
                fallback = int(torch.randint(len(self.dataset), ()))
            if error is None:
                why = "the mapper skipped"
            else:
                why = "cannot decode"
                skipped.append((int(index), error))
            logging.getLogger(__name__).warning(
                f"{why} dataset item {index} (stream position {position}){f': {error}' if error else ''}; "
                f"trying item {fallback}"
            )
            index = fallback
        raise RuntimeError(f"the mapper skipped {_MAX_RETRIES + 1} dataset items in a row at stream position {position}"
                           + (f" (last: {skipped[-1][1]})" if skipped else ""))

    def __iter__(self):
        info = torchdata.get_worker_info()
        pairs = self._indices()
        if info is not None and info.num_workers > 1:
            # the DataLoader reads workers round robin: worker w gets the ordinals w, w+n, ...
            pairs = itertools.islice(pairs, info.id, None, info.num_workers)
        for position, index in pairs:
            yield (position, index, *self.map_sample(position, index))


def _unchanged(sample):
    return sample


class ResumableBatches:
    """Batches (lists of ``batch_size`` mapped dicts) of a :class:`PositionedSampleStream`.

    With ``aspect_ratio_grouping`` a batch holds images that are all landscape or all portrait
    (detectron2's two groups); otherwise consecutive samples. Iterate it once (it is infinite).
    ``max_bad_samples``: how many distinct undecodable dataset items are skipped before
    ``RuntimeError`` (None: no limit).
    """

    def __init__(self, stream, batch_size, *, aspect_ratio_grouping, num_workers, max_bad_samples=None):
        self.stream, self.batch_size = stream, batch_size
        self.aspect_ratio_grouping, self.num_workers = aspect_ratio_grouping, num_workers
        self.max_bad_samples = max_bad_samples
        self._buckets = [[], []]  # [(position, index, data)]
        self._next = 0
        self.bad_samples = {}  # {dataset index: error} of the undecodable items skipped

    def state_dict(self):
        pending = sorted((p, i) for bucket in self._buckets for p, i, _ in bucket)
        return {
            "sampler_seed": int(self.stream.sampler._seed),
            "sample_seed": int(self.stream.seed),
            "next_position": int(self._next),
            "pending": [[int(p), int(i)] for p, i in pending],
            "bad_samples": [[int(i), str(e)] for i, e in sorted(self.bad_samples.items())],
        }

    def load_state_dict(self, state):
        self.stream.sampler._seed = int(state["sampler_seed"])
        self.stream.seed = int(state["sample_seed"])
        self.stream.start = self._next = int(state["next_position"])
        self.stream.replay = [(int(p), int(i)) for p, i in state["pending"]]
        self._buckets = [[], []]
        self.bad_samples = {int(i): str(e) for i, e in state.get("bad_samples", [])}

    def _count_bad(self, skipped):
        for index, error in skipped:
            self.bad_samples.setdefault(index, error)
        limit = self.max_bad_samples
        if skipped and limit is not None and len(self.bad_samples) > limit:
            listed = "\n  ".join(f"dataset item {i}: {e}" for i, e in sorted(self.bad_samples.items()))
            raise RuntimeError(
                f"{len(self.bad_samples)} training images cannot be decoded, more than DATA.MAX_BAD_SAMPLES="
                f"{limit}; fix or remove them (or raise the limit):\n  {listed}"
            )

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
        for position, index, data, skipped in self._samples():
            self._count_bad(skipped)
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
        max_bad_samples=int(cfg.DATA.MAX_BAD_SAMPLES),
    )
