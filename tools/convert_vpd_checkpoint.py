#!/usr/bin/env python
"""Convert a released VPD / Meta-Prompts checkpoint into an odise-ext checkpoint (or back).

    python tools/convert_vpd_checkpoint.py vpd_depth_480x480.pth vpd_nyu_depth.pth \\
        --config-file configs/vpd/vpd_nyu_depth.yaml

then ``tools/train_net.py --config-file configs/vpd/vpd_nyu_depth.yaml --eval-only
MODEL.WEIGHTS vpd_nyu_depth.pth MODEL.DIFFUSION.WEIGHTS v1-5-pruned-emaonly.ckpt``. The format
(vpd_depth, mp_depth, vpd_seg, vpd_refer, mp_seg_ade20k, mp_seg_cityscapes, mp_seg_cityscapes_extra)
is detected from the keys, or given with ``--format``. Every released key
and shape is checked (``--no-release-shapes`` skips the shape check, for scaled-down test
models); with ``--config-file`` every converted key and shape is also checked against the
config's model (built on the meta device). ``--to-release`` converts one of our checkpoints back
into the released layout. Files are read with ``torch.load(weights_only=True)`` only.

The Meta-Prompts segmentation key lists are DERIVED from the public code, not read off released
files; ADE20K and Cityscapes have the same keys, told apart by the classifier's shape.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# torch and odise_ext are imported after the command line is parsed (--help answers at once).


def _cfg_of(config_file):
    """The config to verify against (shapes only, on the meta device), checked before any
    checkpoint is read."""
    from odise_ext.config.early_checks import checked_cfg

    return checked_cfg(config_file, ["MODEL.DIFFUSION.WEIGHTS", "random", "MODEL.DEVICE", "meta"], weights=False)


def _model_of(config_file, cfg=None):
    import torch
    from detectron2.modeling import build_model

    cfg = cfg if cfg is not None else _cfg_of(config_file)
    with torch.device("meta"):
        return build_model(cfg)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="released checkpoint (.pth), or ours with --to-release")
    p.add_argument("output", help="where to write the converted checkpoint")
    p.add_argument("--format", default="auto",
                   help="the released checkpoint's format (default: detected); an unknown name lists them")
    p.add_argument("--config-file", default="", help="verify the converted keys against this config's model")
    p.add_argument("--no-release-shapes", action="store_true", help="do not compare shapes with the released model")
    p.add_argument("--to-release", action="store_true", help="convert one of our checkpoints back")
    args = p.parse_args(argv)
    import torch

    from odise_ext.utils.atomic_io import atomic_write
    from odise_ext.checkpoint import (
        RELEASE_FORMATS,
        check_against_model,
        convert_ours_to_release,
        convert_release_to_ours,
        detect_release_format,
        load_release_checkpoint,
    )

    if args.format not in ("auto", *RELEASE_FORMATS):
        p.error(f"argument --format: invalid choice: {args.format!r} (choose from "
                f"{', '.join(repr(f) for f in ['auto', *sorted(RELEASE_FORMATS)])})")
    cfg = _cfg_of(args.config_file) if args.config_file else None
    try:
        state, rest = load_release_checkpoint(args.input)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(str(e))
    if args.to_release:
        fmt = args.format if args.format != "auto" else rest.get("release_format")
        if fmt not in RELEASE_FORMATS:
            raise SystemExit(f"{args.input}: no 'release_format' recorded; pass --format")
        try:
            # The released container: 'model', or 'state_dict' for the mmcv runner's files.
            out = {RELEASE_FORMATS[fmt].container: convert_ours_to_release(state, fmt, rest.get("release_dropped"))}
        except ValueError as e:
            raise SystemExit(str(e))
    else:
        try:
            fmt = detect_release_format(state) if args.format == "auto" else args.format
            converted, dropped = convert_release_to_ours(state, fmt, check_shapes=not args.no_release_shapes)
        except ValueError as e:
            raise SystemExit(str(e))
        print(f"{fmt}: converted {len(converted)} tensors")
        if args.config_file:
            problems = check_against_model(converted, _model_of(args.config_file, cfg), fmt)
            if problems:
                raise SystemExit("the converted checkpoint does not fit the model:\n  " + "\n  ".join(problems[:50]))
            print(f"all keys and shapes match the model of {args.config_file}")
        out = {
            "model": converted,
            "release_format": fmt,
            "release_dropped": dropped,
            "__author__": "converted by tools/convert_vpd_checkpoint.py",
        }
    atomic_write(args.output, lambda f: torch.save(out, f))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when run through runpy
    from one_line_errors import run

    run(main)
