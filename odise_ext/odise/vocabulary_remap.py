"""Scoring an open-vocabulary model whose test vocabulary is not the dataset's class list.

The model predicts indices into its own vocabulary (``MODEL.ODISE.TEST_VOCABULARY``), the
evaluators expect the dataset's contiguous ids. :func:`vocabulary_to_dataset` matches the classes
by name (:func:`~odise_ext.odise.open_vocab.vocabulary.match_classes`) and decides, before any
inference, whether the dataset's metrics are well defined for that vocabulary:

- **same classes, any order** (a permutation): predictions are renumbered; the metrics are
  those of the dataset's own vocabulary in that order.
- **more classes** (a superset): the extra classes have no ground truth. Panoptic: their
  segments become void (unlabelled pixels: neither a true nor a false positive). Instances: their
  detections are dropped (COCO AP only scores the dataset's categories). Semantic: their score
  channels are dropped, so each pixel takes the best *dataset* class (they still compete in the
  per-mask softmax that produced the scores).
- **fewer classes** (a subset), an ambiguous name, or two names for one dataset class: refused
  with ``ValueError``. A metric averaged over the dataset's classes would score the missing ones
  as never predicted, a number about the vocabulary rather than the model.
- thing / stuff flags: panoptic and instance scoring use the dataset's. A vocabulary class whose
  flag differs from its dataset class is refused there (the model merged or split its segments
  the other way); ``MODEL.ODISE.TEST_VOCABULARY`` takes the flags of ``DATASETS.TEST[0]``.
"""
from typing import Optional, Sequence

import torch
from detectron2.evaluation import DatasetEvaluator, SemSegEvaluator

from .open_vocab.vocabulary import Vocabulary, dataset_vocabulary, match_classes

__all__ = ["VocabularyRemapEvaluator", "vocabulary_evaluators", "vocabulary_to_dataset"]


def vocabulary_to_dataset(vocabulary: Vocabulary, metadata, *, check_things: bool) -> Optional[Sequence]:
    """Dataset contiguous id of each vocabulary class (None: a class the dataset lacks), or None
    when the vocabulary is the dataset's own (nothing to convert).

    Raises:
        ValueError: the dataset's metrics are not defined for this vocabulary (see module doc).
    """
    name = metadata.get("name", "?")
    dataset = dataset_vocabulary(metadata)
    try:
        match = match_classes(vocabulary, dataset, strict=True)
    except ValueError as e:
        raise ValueError(f"cannot evaluate on '{name}' with the test vocabulary: {e}") from None
    missing = sorted(set(range(len(dataset))) - {j for j in match if j is not None})
    if missing:
        raise ValueError(
            f"the test vocabulary lacks {len(missing)} of the {len(dataset)} classes of '{name}' "
            f"({', '.join(dataset.names[j] for j in missing)}): the dataset's metrics would count them as never "
            "predicted. Evaluate with all its classes (any order, extra classes allowed) or on a dataset with "
            "only these classes."
        )
    if check_things:
        dataset_things, vocab_things = set(dataset.thing_ids), set(vocabulary.thing_ids)
        wrong = [vocabulary.names[i] for i, j in enumerate(match)
                 if j is not None and (i in vocab_things) != (j in dataset_things)]
        if wrong:
            raise ValueError(
                f"thing/stuff flags of the test vocabulary differ from '{name}' for {wrong}: the model would merge "
                "or split their segments unlike the ground truth"
            )
    if list(match) == list(range(len(dataset))):
        return None
    return match


def vocabulary_evaluators(evaluators: Sequence[DatasetEvaluator], vocabulary: Vocabulary, metadata) -> list:
    """``evaluators`` (of the dataset of ``metadata``) scoring predictions made with ``vocabulary``:
    each wrapped in a :class:`VocabularyRemapEvaluator` unless ``vocabulary`` is the dataset's own.

    Raises:
        ValueError: the dataset's metrics are not defined for this vocabulary (see module doc).
    """
    # semantic scores are re-indexed by name alone; panoptic / instance ids also need the
    # dataset's thing / stuff split
    check_things = any(not isinstance(e, SemSegEvaluator) for e in evaluators)
    to_dataset = vocabulary_to_dataset(vocabulary, metadata, check_things=check_things)
    if to_dataset is None:
        return list(evaluators)
    things = dataset_vocabulary(metadata).thing_ids
    return [VocabularyRemapEvaluator(e, to_dataset, things) for e in evaluators]


class VocabularyRemapEvaluator(DatasetEvaluator):
    """Converts each output from vocabulary indices to dataset ids, then feeds ``evaluator``."""

    def __init__(self, evaluator: DatasetEvaluator, to_dataset: Sequence[Optional[int]], thing_ids):
        self.evaluator = evaluator
        self._map = list(to_dataset)
        # vocabulary index of each dataset class, in dataset order (the semantic channels)
        self._channels = [self._map.index(j) for j in range(len([j for j in self._map if j is not None]))]
        self._things = set(thing_ids)

    def reset(self):
        self.evaluator.reset()

    def process(self, inputs, outputs):
        self.evaluator.process(inputs, [self.convert(o) for o in outputs])

    def evaluate(self):
        return self.evaluator.evaluate()

    def convert(self, output):
        out = dict(output)
        if "sem_seg" in out:  # [K_vocab, H, W] -> [K_dataset, H, W]
            sem = out["sem_seg"]
            out["sem_seg"] = sem[torch.as_tensor(self._channels, device=sem.device)]
        if "panoptic_seg" in out:
            seg, info = out["panoptic_seg"]
            seg, kept = seg.clone(), []
            for s in info:
                j = self._map[s["category_id"]]
                if j is None:
                    seg[seg == s["id"]] = 0  # void
                else:
                    kept.append({**s, "category_id": j, "isthing": j in self._things})
            out["panoptic_seg"] = (seg, kept)
        if "instances" in out:
            inst = out["instances"]
            mapped = [self._map[int(c)] for c in inst.pred_classes.tolist()]
            keep = torch.tensor([j is not None and j in self._things for j in mapped], dtype=torch.bool)
            inst = inst[keep.to(inst.pred_classes.device)]
            inst.pred_classes = torch.tensor([j for j in mapped if j is not None and j in self._things],
                                             dtype=torch.int64, device=inst.pred_classes.device)
            out["instances"] = inst
        return out
