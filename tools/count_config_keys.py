"""Count the config keys odise-ext adds on top of detectron2's defaults, per namespace.

    python tools/count_config_keys.py [--depth 2]

A leaf key is one whose value is not a ``CfgNode``; it is counted under the node formed by at most
its first ``--depth`` name components (``MODEL.VPD.PROMPT.CLASS_NAMES`` under ``MODEL.VPD`` for
depth 2, ``DATA.TRAIN_MAPPER`` under ``DATA``). Keys detectron2 already defines are not counted.
"""
import argparse
import os
import sys
from collections import Counter

# detectron2 and odise_ext are imported after the command line is parsed (--help answers at once).


def leaf_keys(node, prefix=""):
    """Full dotted names of every leaf key under ``node``."""
    from detectron2.config import CfgNode

    for name, value in node.items():
        full = f"{prefix}{name}"
        if isinstance(value, CfgNode):
            yield from leaf_keys(value, full + ".")
        else:
            yield full


def added_keys():
    """Leaf keys defined by ``add_odise_config`` and not by detectron2's ``get_cfg``."""
    from detectron2.config import get_cfg

    from odise_ext.config import get_odise_cfg

    base = set(leaf_keys(get_cfg()))
    return sorted(k for k in leaf_keys(get_odise_cfg()) if k not in base)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=2, help="name components of a namespace")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    keys = added_keys()
    counts = Counter(".".join(k.split(".")[: min(args.depth, k.count("."))]) for k in keys)
    width = max(map(len, counts))
    for namespace, n in sorted(counts.items()):
        print(f"{namespace:<{width}}  {n:4d}")
    print(f"{'total':<{width}}  {len(keys):4d}")


if __name__ == "__main__":
    main()
