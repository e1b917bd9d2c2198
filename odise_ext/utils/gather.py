"""Collecting evaluators' per-sample records from every process on the main one."""
import itertools
from typing import List, Optional, Tuple

from detectron2.utils import comm

__all__ = ["gather_on_main"]


def gather_on_main(*records: List, distributed: bool = True) -> Optional[Tuple[List, ...]]:
    """Each of ``records`` (this process's list of per-sample records) concatenated over all
    processes in rank order, on the main process; None on the others.

    Collective when ``distributed``: every process calls it, with the same number of lists.
    Without ``distributed`` the lists are returned as they are (a single-process evaluation).

    Returns:
        a tuple with one list per argument (main process), or None (other processes).
    """
    if not distributed:
        return tuple(list(r) for r in records)
    comm.synchronize()
    gathered = [comm.gather(r, dst=0) for r in records]
    if not comm.is_main_process():
        return None
    return tuple(list(itertools.chain(*g)) for g in gathered)
