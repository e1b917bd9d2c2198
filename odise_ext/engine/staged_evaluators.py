"""detectron2's evaluators whose output files appear only complete.

detectron2's ``SemSegEvaluator``, ``COCOEvaluator`` and ``COCOPanopticEvaluator`` write their
outputs (``sem_seg_predictions.json``, ``coco_instances_results.json``, ``predictions.json`` ...)
in place into their output directory. Ours give them a private staging directory instead and,
after each evaluation, copy every file written there to the real output directory atomically
(``utils/atomic_io.publish_files``): a full disk leaves no partial file, the previous version
survives and the error names the path. Nothing of detectron2 is replaced.
"""
import shutil
import tempfile
import weakref
from typing import Optional

from detectron2.evaluation import COCOEvaluator, COCOPanopticEvaluator, SemSegEvaluator

from ..utils.atomic_io import publish_files

__all__ = ["StagedCOCOEvaluator", "StagedPanopticEvaluator", "StagedSemSegEvaluator"]


class _StagedOutput:
    """Mixin placed before a detectron2 evaluator class that takes ``output_dir``."""

    def __init__(self, *args, output_dir: Optional[str] = None, **kwargs):
        """``output_dir``: where the outputs end up (None: nothing written, as in detectron2)."""
        self.output_dir = output_dir
        self.staging_dir = tempfile.mkdtemp(prefix="odise_ext_eval_") if output_dir else None
        if self.staging_dir:
            weakref.finalize(self, shutil.rmtree, self.staging_dir, True)
        super().__init__(*args, output_dir=self.staging_dir, **kwargs)

    def evaluate(self, *args, **kwargs):
        results = super().evaluate(*args, **kwargs)
        if self.staging_dir:  # other processes than the main one stage nothing
            publish_files(self.staging_dir, self.output_dir)
        return results


class StagedSemSegEvaluator(_StagedOutput, SemSegEvaluator):
    """``SemSegEvaluator`` with atomic output files."""


class StagedCOCOEvaluator(_StagedOutput, COCOEvaluator):
    """``COCOEvaluator`` with atomic output files."""


class StagedPanopticEvaluator(_StagedOutput, COCOPanopticEvaluator):
    """``COCOPanopticEvaluator`` with atomic output files."""
