#!/usr/bin/env python
"""Latency / peak-memory benchmarks of odise-ext components, printed as one JSON object.

Entries live in ``BENCHMARK_REGISTRY``; each builds its model from a config (random weights
unless the config points at real files), runs warm-up passes and then timed passes.

Example (the full SD v1 + ViT-L-14-336 backbone at 512x512 on CPU)::

    python tools/benchmark.py --entry backbone --config-file configs/base/sd_v1.yaml \\
        --size 512 --runs 3 --warmup 1 --device cpu --dtype float32

``--suite OUT.json`` measures the whole model of the config instead (fp32 / bf16 / bf16+compile
inference over ``--sizes`` x ``--batch-sizes``, training steps at ``--train-size``) within
``--budget-s`` seconds; see ``tools/benchmark_suite.py`` (scripts/device_check.sh runs it)::

    python tools/benchmark.py --suite out.json --table out.md --config-file configs/odise_coco.yaml \\
        --device cuda --sizes 512 1024 --batch-sizes 1 4 --budget-s 300
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Callable, Dict

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
# torch, detectron2 and odise_ext are imported after the command line is parsed (--help answers
# at once), so the entries are kept in a plain dict rather than a detectron2 Registry.

# A benchmark entry is ``fn(cfg, args) -> (callable, description)``: ``callable()`` runs one timed
# pass; ``description`` is a dict merged into the JSON output (e.g. image size).
BENCHMARK_REGISTRY: Dict[str, Callable] = {}


def register_benchmark(fn: Callable) -> Callable:
    """Register ``fn`` as the benchmark entry named like the function."""
    BENCHMARK_REGISTRY[fn.__name__] = fn
    return fn


def setup_cfg(args):
    from odise_ext.config import setup_cfg as odise_setup_cfg
    from odise_ext.config.early_checks import user_input_errors

    with user_input_errors():  # a misspelt key: one line naming the closest keys
        cfg = odise_setup_cfg(args.config_file, args.opts, freeze=False)
    # Benchmarks measure architectures; without real files they run on random weights.
    if not cfg.MODEL.DIFFUSION.WEIGHTS:
        cfg.MODEL.DIFFUSION.WEIGHTS = "random"
    if not cfg.MODEL.CLIP.WEIGHTS:
        cfg.MODEL.CLIP.WEIGHTS = "random"
    cfg.MODEL.DIFFUSION.DTYPE = args.dtype
    cfg.MODEL.CLIP.DTYPE = args.dtype
    cfg.MODEL.DEVICE = args.device
    cfg.freeze()
    return cfg


@register_benchmark
def backbone(cfg, args):
    """The diffusion backbone alone (windows, frozen VAE/UNet/CLIP, projections), inference."""
    import torch
    from detectron2.modeling import build_backbone

    import odise_ext  # noqa: F401  (registers DiffusionBackbone)

    model = build_backbone(cfg).to(args.device).eval()
    images = torch.rand(args.batch_size, 3, args.size, args.size, device=args.device)

    def run():
        with torch.no_grad():
            out = model(images)
        return out

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return run, {
        "image_size": [args.size, args.size],
        "batch_size": args.batch_size,
        "trainable_params": trainable,
        "frozen_params": frozen,
        "output_shape": {k: [v.channels, v.stride] for k, v in model.output_shape().items()},
    }


@register_benchmark
def model(cfg, args):
    """The whole model of the config (e.g. ODISE: backbone, Mask2Former head, CLIP fusion,
    panoptic/semantic/instance post-processing), inference on one random RGB image."""
    import torch
    from detectron2.modeling import build_model

    import odise_ext  # noqa: F401  (registers datasets, for the model's vocabulary, and models)

    net = build_model(cfg).to(args.device).eval()
    gen = torch.Generator().manual_seed(0)
    batch = [
        {"image": torch.randint(0, 256, (3, args.size, args.size), generator=gen, dtype=torch.uint8), "height": args.size, "width": args.size}
        for _ in range(args.batch_size)
    ]

    def run():
        with torch.no_grad():
            return net(batch)

    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    return run, {
        "image_size": [args.size, args.size],
        "batch_size": args.batch_size,
        "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
        "trainable_params": trainable,
        "frozen_params": frozen,
    }


def _sync(device: str):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_memory_mb(device: str):
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_max_rss"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    entries = sorted(BENCHMARK_REGISTRY)
    parser.add_argument("--entry", default="backbone", help=f"one of {entries}")
    parser.add_argument("--config-file", default="configs/base/sd_v1.yaml")
    parser.add_argument("--size", type=int, default=512, help="square input side in pixels")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="timed passes (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="dtype of the frozen modules")
    suite = parser.add_argument_group("suite mode")
    suite.add_argument("--suite", metavar="JSON", help="run the suite, write its JSON here")
    suite.add_argument("--table", metavar="MD", help="suite: also write a markdown table here")
    suite.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    suite.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    suite.add_argument("--train-size", type=int, default=1024, help="suite: training crop side")
    suite.add_argument("--train-batch", type=int, default=2, help="suite: images per training step")
    suite.add_argument("--train-runs", type=int, default=2, help="suite: timed training steps")
    suite.add_argument("--compile-backend", default="inductor",
                       help="suite: torch.compile backend of the compiled cells ('' = none)")
    suite.add_argument("--budget-s", type=float, default=300.0,
                       help="suite: cells that would end after this many seconds are skipped")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ..."
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    if args.entry not in BENCHMARK_REGISTRY:
        parser.error(f"--entry {args.entry!r} is not one of {entries}")
    import torch
    from tqdm import tqdm

    if args.suite:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from benchmark_suite import run_suite  # noqa: E402  (tools/benchmark_suite.py)

        return run_suite(args, setup_cfg, args.suite, args.table)
    entry = BENCHMARK_REGISTRY[args.entry]
    cfg = setup_cfg(args)
    run, description = entry(cfg, args)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    for _ in tqdm(range(args.warmup), desc="warm-up", disable=args.warmup == 0, file=sys.stderr):
        run()
        _sync(args.device)
    times = []
    for _ in tqdm(range(args.runs), desc="timed", file=sys.stderr):
        start = time.perf_counter()
        run()
        _sync(args.device)
        times.append((time.perf_counter() - start) * 1000)

    peak, kind = _peak_memory_mb(args.device)
    result = {
        "entry": args.entry,
        "config": args.config_file,
        "latency_ms": statistics.median(times),
        "latency_ms_runs": [round(t, 2) for t in times],
        "peak_memory_mb": round(peak, 1),
        "memory_kind": kind,
        "dtype": args.dtype,
        "device": args.device,
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        **description,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when run through runpy
    from one_line_errors import run

    run(main)
