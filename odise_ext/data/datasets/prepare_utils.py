"""Helpers of the ``datasets/prepare_*.py`` conversion scripts.

- the common command line (``--root``, ``--splits``, ``--overwrite``, ``--workers``);
- :func:`missing_inputs` / :func:`report_missing`: say exactly which official file or folder is
  missing and where it comes from;
- atomic writes, so an interrupted run never leaves a truncated file that a re-run would skip;
- :func:`progress_map`: a tqdm progress bar over a (possibly parallel) map.
"""
import json
import os
import shutil
import sys
from multiprocessing import Pool
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from ...utils.atomic_io import atomic_open, atomic_save_image

from .catalog_utils import default_datasets_root

__all__ = [
    "copy_file",
    "missing_inputs",
    "progress_map",
    "read_bts_split_file",
    "read_split_list",
    "report_missing",
    "report_problems",
    "resolve_root",
    "run_per_split",
    "save_image",
    "save_json",
    "write_index",
]


def resolve_root(root) -> str:
    """The ``--root`` argument, or the default datasets root, as an absolute path."""
    return os.path.abspath(root) if root else default_datasets_root()


def run_per_split(convert_split: Callable[[str, str, bool, int], int], args) -> int:
    """The body of a script that converts each split on its own.

    ``args``: its parsed command line (``datasets/common_args.py``'s ``per_split_parser``: the
    script parses it before its heavy imports). Calls ``convert_split(root, split, overwrite,
    workers)`` for every requested split; returns the OR of their exit statuses, so one split
    with missing inputs does not stop the others.
    """
    root = resolve_root(args.root)
    status = 0
    for split in args.splits:
        status |= convert_split(root, split, args.overwrite, args.workers)
    return status


def missing_inputs(required: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """The ``(path, how to get it)`` pairs whose path (file or folder) does not exist."""
    return [(p, how) for p, how in required if not os.path.exists(p)]


def report_missing(missing: Sequence[Tuple[str, str]], file=None) -> int:
    """Print each missing input and its source; returns the exit status 1."""
    file = file or sys.stderr
    print("Cannot convert: required inputs are missing.", file=file)
    for path, how in missing:
        print(f"  MISSING {path}\n    get it: {how}", file=file)
    print("See datasets/README.md for the expected layout.", file=file)
    return 1


def read_split_list(path: str) -> List[str]:
    """Image ids of an official split file (one id per line; blank lines ignored)."""
    with open(path) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if not ids:
        raise ValueError(f"Split list {path} is empty")
    return ids


def save_image(array: np.ndarray, path: str, **kwargs) -> None:
    """Write ``array`` with PIL (format from the extension), atomically."""
    if os.path.splitext(path)[1].lower() not in Image.registered_extensions():
        raise ValueError(f"{path}: PIL has no image format for this extension")
    atomic_save_image(Image.fromarray(array), path, **kwargs)


def copy_file(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` (bytes unchanged), atomically."""
    with open(src, "rb") as fin, atomic_open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)


def save_json(obj, path: str) -> None:
    """Write ``obj`` as json, atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f)


def read_bts_split_file(path: str) -> List[Tuple[str, Optional[str]]]:
    """``[(rgb, depth or None)]`` from a BTS split file (NYUv2, KITTI Eigen): lines
    ``"rgb depth [focal]"`` with paths relative to the data folder; KITTI writes ``None`` for
    frames without ground truth."""
    pairs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise ValueError(f"{path}:{n}: expected 'rgb depth [focal]', got {line.strip()!r}")
            pairs.append((parts[0].lstrip("/"), None if parts[1] == "None" else parts[1].lstrip("/")))
    return pairs


def report_problems(tag: str, problems: Sequence[str]) -> bool:
    """Print the first 20 ``problems`` under ``[tag]``; returns whether there were any."""
    if problems:
        print(f"[{tag}] {len(problems)} problem(s):", *problems[:20], sep="\n  ")
    return bool(problems)


def write_index(tag: str, entries, problems: Sequence[str], path: str, summary: str) -> bool:
    """Write an index file, or explain why not.

    With ``problems`` (inputs that are missing or malformed) nothing is written and the first 20
    are printed under ``[tag]``; otherwise ``entries`` is written to ``path`` as json, atomically,
    and ``[tag] summary`` printed. Returns whether the file was written.
    """
    if report_problems(tag, problems):
        return False
    save_json(entries, path)
    print(f"[{tag}] {summary}")
    return True


def progress_map(fn: Callable, items: Iterable, *, total: int, desc: str,
                 workers: int = 1) -> Iterator:
    """``fn(item)`` for each item, in order, with a progress bar; ``workers > 1`` uses a process
    pool (``fn`` must then be picklable: a module-level function or a ``functools.partial``)."""
    bar = tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True)
    try:
        if workers <= 1:
            for item in items:
                yield fn(item)
                bar.update()
        else:
            with Pool(workers) as pool:
                for out in pool.imap(fn, items, chunksize=8):
                    yield out
                    bar.update()
    finally:
        bar.close()
