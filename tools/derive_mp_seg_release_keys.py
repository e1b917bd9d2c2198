#!/usr/bin/env python
"""Write the key lists of Meta-Prompts' released segmentation checkpoints, DERIVED from the public
code (no released file was available to read them off):

    python tools/derive_mp_seg_release_keys.py    # -> odise_ext/metaprompts/release/keys/mp_seg_*.tsv.gz

mmcv's runner saves ``{'meta': ..., 'state_dict': model.state_dict(), ...}``, so the names,
shapes and order follow from the module definitions (fudan-zvg/meta-prompts at a3e8583):

- ``segmentation/models/model.py:56-85`` (``MetaPromptsSeg.__init__``): per refinement step i
  ``t{i}`` [1, 1280] and, for i > 1, ``cross_unet_conv{i}`` = the UNet's own ``out`` head
  (stored again under that name); one ``meta_prompts`` [num_prompt, 768]; ``encoder_vq`` (SD's
  VAE without its decoder), ``unet.unet.diffusion_model`` (the whole ldm UNet, time MLP included),
  ``sd_model`` (the LatentDiffusion left with its 12 noise-schedule buffers), ``upconv1..4`` =
  (Conv2d(ldm_dim[i], 768, 3, 1, 1), GroupNorm(16, 768), ReLU) for ldm_dim 320/640/1280/1280;
- ``decode_head`` = mmseg ``UPerHead`` and ``auxiliary_head`` = mmseg ``FCNHead`` built from the
  configs the README names (``configs/.ipynb_checkpoints/ade-checkpoint.py`` and
  ``cityscapes-checkpoint.py``: refine_step 3, num_prompt 150, channels 512, pool scales
  1/2/3/6, 150 / 19 classes, FCN in_index 2 with one conv; ``configs/cityscapes_extra.py``, the
  Mapillary-pretrained Cityscapes model: the same with refine_step 1) over
  ``_base_/models/upernet_r50.py``
  (SyncBN, so ConvModules hold ``conv`` without bias + ``bn``; FCN concat_input False);
  BaseDecodeHead registers ``conv_seg`` first.

nn.Module.state_dict() writes a module's own parameters (t1, t2, t3, meta_prompts) before its
children, in registration order. The SD parts (VAE encoder, UNet, schedule buffers) are the same
modules as VPD's ADE20K checkpoint, so their rows are copied from ``vpd_seg_state_dict_keys``.
"""
import argparse
import ast
import gzip
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_DIR = os.path.join(ROOT, "odise_ext", "metaprompts", "release", "keys")
VPD_KEY_DIR = os.path.join(ROOT, "odise_ext", "vpd", "release", "keys")  # the released VPD ADE20K list
# (file, dataset, config, number of classes, refinement steps)
VARIANTS = (
    ("mp_seg_ade20k_state_dict_keys.tsv.gz", "ADE20K", "configs/.ipynb_checkpoints/ade-checkpoint.py", 150, 3),
    ("mp_seg_cityscapes_state_dict_keys.tsv.gz", "Cityscapes",
     "configs/.ipynb_checkpoints/cityscapes-checkpoint.py", 19, 3),
    ("mp_seg_cityscapes_extra_state_dict_keys.tsv.gz", "Cityscapes with Mapillary pretraining",
     "configs/cityscapes_extra.py", 19, 1),
)
PROMPTS, DIM, CHANNELS, POOL_SCALES, LDM_DIMS = 150, 768, 512, 4, (320, 640, 1280, 1280)


def _sd_rows():
    with gzip.open(os.path.join(VPD_KEY_DIR, "vpd_seg_state_dict_keys.tsv.gz"), "rt") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if not line.startswith(("#", "key\t"))]
    keep = ("encoder_vq.", "unet.unet.diffusion_model.", "sd_model.")
    return [(k, ast.literal_eval(s), d) for k, s, d, _ in rows if k.startswith(keep)]


def _conv_module(prefix, cin, cout, k):
    rows = [(prefix + "conv.weight", (cout, cin, k, k), "float32")]
    rows += [(f"{prefix}bn.{p}", (cout,), "float32") for p in ("weight", "bias", "running_mean", "running_var")]
    return rows + [(prefix + "bn.num_batches_tracked", (), "int64")]


def derive(num_classes, steps=3):
    """[(key, shape, dtype)] of the released state dict, in its order."""
    sd = _sd_rows()
    rows = [(f"t{i}", (1, 1280), "float32") for i in range(1, steps + 1)]
    rows.append(("meta_prompts", (PROMPTS, DIM), "float32"))
    out_head = [(k[len("unet.unet.diffusion_model."):], s, d) for k, s, d in sd
                if k.startswith("unet.unet.diffusion_model.out.")]
    for i in range(2, steps + 1):
        rows += [(f"cross_unet_conv{i}.{k[len('out.'):]}", s, d) for k, s, d in out_head]
    for prefix in ("encoder_vq.", "unet.", "sd_model."):
        rows += [r for r in sd if r[0].startswith(prefix)]
    for i, c in enumerate(LDM_DIMS, 1):
        rows += [(f"upconv{i}.0.weight", (DIM, c, 3, 3), "float32"), (f"upconv{i}.0.bias", (DIM,), "float32"),
                 (f"upconv{i}.1.weight", (DIM,), "float32"), (f"upconv{i}.1.bias", (DIM,), "float32")]
    seg = [("conv_seg.weight", (num_classes, CHANNELS, 1, 1), "float32"), ("conv_seg.bias", (num_classes,), "float32")]
    head = list(seg)
    for i in range(POOL_SCALES):
        head += _conv_module(f"psp_modules.{i}.1.", PROMPTS, CHANNELS, 1)
    head += _conv_module("bottleneck.", PROMPTS + POOL_SCALES * CHANNELS, CHANNELS, 3)
    for i in range(3):
        head += _conv_module(f"lateral_convs.{i}.", PROMPTS, CHANNELS, 1)
    for i in range(3):
        head += _conv_module(f"fpn_convs.{i}.", CHANNELS, CHANNELS, 3)
    head += _conv_module("fpn_bottleneck.", 4 * CHANNELS, CHANNELS, 3)
    rows += [("decode_head." + k, s, d) for k, s, d in head]
    aux = seg + _conv_module("convs.0.", PROMPTS, CHANNELS, 3)
    rows += [("auxiliary_head." + k, s, d) for k, s, d in aux]
    return rows


def main(argv=None):
    # no options; --help describes what is written, and a stray argument is an error, not a run
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    for name, dataset, config, classes, steps in VARIANTS:
        header = (
            f"# MetaPromptsSeg ({dataset}, {config}) model.state_dict(), mmcv runner: checkpoint['state_dict']. "
            "DERIVED from the public code (fudan-zvg/meta-prompts a3e8583 segmentation/models/model.py:56-85, "
            "meta_prompts UNetWrapper, mmseg UPerHead/FCNHead/PPM/ConvModule, _base_/models/upernet_r50.py; "
            "SD rows as in vpd_seg_state_dict_keys), NOT read off a released file: see "
            "tools/derive_mp_seg_release_keys.py\n"
        )
        with gzip.GzipFile(os.path.join(KEY_DIR, name), "wb", mtime=0) as f:
            f.write(header.encode())
            f.write(b"key\tshape\tdtype\tnumel\n")
            for key, shape, dtype in derive(classes, steps):
                numel = 1
                for d in shape:
                    numel *= d
                f.write(f"{key}\t{shape}\t{dtype}\t{numel}\n".encode())
        print("wrote", name)


if __name__ == "__main__":
    main()
