"""Meta-Prompts' released checkpoints: their formats (:mod:`.formats`, registered on import) and
key lists (``keys/*.tsv.gz``); converted by :mod:`odise_ext.checkpoint` (``tools/convert_vpd_checkpoint.py``)."""
from .formats import METAPROMPTS_FORMATS

__all__ = ["METAPROMPTS_FORMATS"]
