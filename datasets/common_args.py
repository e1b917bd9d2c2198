"""The command-line arguments shared by the ``prepare_*.py`` scripts. Standard library only:
each script parses its command line with these before its heavy imports (numpy, torch through
odise_ext), so ``--help`` and argument errors answer at once."""
import argparse
import os
from typing import Sequence

__all__ = ["add_common_arguments", "per_split_parser"]


def add_common_arguments(parser: argparse.ArgumentParser, splits: Sequence[str]) -> None:
    """``--root``, ``--splits``, ``--overwrite`` and ``--workers``."""
    parser.add_argument("--root", default=None,
                        help="datasets root (default: $DETECTRON2_DATASETS, else ./datasets)")
    parser.add_argument("--splits", nargs="+", default=list(splits), choices=list(splits),
                        help="splits to convert (default: all)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo outputs that already exist (default: keep them)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="parallel processes (default: min(4, CPUs))")


def per_split_parser(doc: str, splits: Sequence[str] = ("train", "val")) -> argparse.ArgumentParser:
    """The whole command line of a script that converts each split on its own (description:
    the first paragraph of ``doc``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    add_common_arguments(parser, splits=splits)
    return parser
