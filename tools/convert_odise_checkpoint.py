#!/usr/bin/env python
"""Convert an ODISE release checkpoint into an odise-ext checkpoint.

    python tools/convert_odise_checkpoint.py odise_label_coco_50e-b67d2efc.pth odise_label_coco.pth \\
        --config-file configs/odise_coco.yaml

then ``MODEL.WEIGHTS odise_label_coco.pth`` with SD v1.3 (``MODEL.DIFFUSION.WEIGHTS``) and OpenAI
CLIP ViT-L-14-336 (``MODEL.CLIP.WEIGHTS``). With ``--config-file`` every converted key is checked
against the model of that config (built on the meta device: no memory, no weights needed), and any
missing, unexpected or mis-shaped key is an error.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# torch and odise_ext are imported after the command line is parsed (--help answers at once).

# the model is built on the meta device (shapes only): no weights are read
_META_OPTS = ["MODEL.DIFFUSION.WEIGHTS", "random", "MODEL.CLIP.WEIGHTS", "random", "MODEL.DEVICE", "meta"]


def config_of(config_file):
    """The config to verify against, checked (keys, values) before the checkpoint is read."""
    from odise_ext.config.early_checks import checked_cfg

    return checked_cfg(config_file, _META_OPTS, weights=False)


def check_against_config(state_dict, config_file, cfg=None):
    """Compare keys and shapes with the trainable state of the config's model; return problems."""
    import torch
    from detectron2.modeling import build_model

    from odise_ext.engine.checkpoint import state_dict_problems

    cfg = cfg if cfg is not None else config_of(config_file)
    with torch.device("meta"):
        model = build_model(cfg)
    # criterion buffers (class weights) are rebuilt from the config, and "_extra_state" entries
    # record where frozen weights come from: neither is a trained weight
    ours = {
        k: v for k, v in model.state_dict().items()
        if torch.is_tensor(v) and not k.startswith("criterion.") and not k.endswith("._extra_state")
    }
    return state_dict_problems(state_dict, ours)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="ODISE checkpoint (.pth)")
    p.add_argument("output", help="where to write the odise-ext checkpoint")
    p.add_argument("--config-file", default="", help="verify against this config's model")
    args = p.parse_args(argv)
    if not os.path.isfile(args.input):
        raise SystemExit(f"no such checkpoint: {args.input}")
    import torch

    from odise_ext.odise.release import convert_odise_state_dict
    from odise_ext.utils.atomic_io import atomic_write
    from odise_ext.utils.safe_load import UnsafeFileError, safe_torch_load

    cfg = config_of(args.config_file) if args.config_file else None
    try:
        ckpt = safe_torch_load(args.input)  # never runs code from the file (ODISE releases hold tensors only)
    except UnsafeFileError as e:
        raise SystemExit(str(e))
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise SystemExit(f"{args.input}: expected an ODISE checkpoint ({{'model': state_dict}} or a state_dict)")
    converted, frozen, other = convert_odise_state_dict(state)
    print(f"converted {len(converted)} tensors; dropped {len(frozen)} frozen SD/CLIP tensors (reloaded from their "
          f"sources) and {len(other)} others ({', '.join(other) or 'none'})")
    if args.config_file:
        problems = check_against_config(converted, args.config_file, cfg)
        if problems:
            raise SystemExit("the converted checkpoint does not fit the model:\n  " + "\n  ".join(problems[:50]))
        print(f"all keys and shapes match the model of {args.config_file}")
    out = {"model": converted, "__author__": "converted from ODISE by tools/convert_odise_checkpoint.py"}
    atomic_write(args.output, lambda f: torch.save(out, f))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when run through runpy
    from one_line_errors import run

    run(main)
