"""VPD's released checkpoints: their formats (:mod:`.formats`, registered on import) and key
lists (``keys/*.tsv.gz``); converted by :mod:`odise_ext.checkpoint` (``tools/convert_vpd_checkpoint.py``)."""
from .formats import DEPTH_HEAD_RULES, VPD_FORMATS

__all__ = ["DEPTH_HEAD_RULES", "VPD_FORMATS"]
