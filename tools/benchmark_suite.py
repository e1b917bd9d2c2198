"""Suite mode of ``tools/benchmark.py`` (``--suite``): one model, many measurements, one JSON.

The whole model of ``--config-file`` is built once with float32 frozen weights (random unless the
config names files) and measured in this order, so that a time budget cuts the least important
cells:

1. inference, frozen weights in fp32, every size x batch size;
2. the same frozen weights cast to bf16 (the fp32/bf16 agreement is measured on a fixed image);
3. training steps at ``--train-size`` crops (bf16 frozen weights, fp32 trainable ones), without
   and with bf16 autocast (``SOLVER.AMP.ENABLED``);
4. inference, bf16, with the frozen blocks ``torch.compile``-d (``MODEL.SPEED.COMPILE``).

Before a cell starts, the suite checks that the elapsed time plus the longest cell of its kind so
far fits into ``--budget-s``; a cell that does not fit is recorded as skipped. The JSON (and the
markdown table) are rewritten after every cell, so a run killed from outside keeps what it
measured.
"""
import json
import platform
import resource
import statistics
import time
import traceback
from types import SimpleNamespace

import numpy as np
import torch

__all__ = ["run_suite"]


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mb(device):
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_max_rss"


def _frozen_modules(model):
    from odise_ext.diffusion.frozen import FrozenModule

    return [m for m in model.modules() if isinstance(m, FrozenModule)]


def _cast_frozen(model, dtype):
    """Cast every frozen module to ``dtype`` in place and drop cached text embeddings (they were
    computed in the old dtype)."""
    for m in _frozen_modules(model):
        m.module.to(dtype)
    for m in model.modules():
        cache = getattr(m, "text_cache", None)
        if cache is not None and hasattr(cache, "_store"):
            cache._store.clear()


def natural_image(size):
    """[3, size, size] uint8: scikit-image's astronaut photograph where installed (the GPU image
    has it), else a fixed smooth synthetic scene."""
    try:
        from skimage import data

        img = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1)
    except Exception:  # noqa: BLE001 - not installed, or its data file is missing (no network)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, 512), torch.linspace(0, 1, 512), indexing="ij")
        img = torch.stack([xx, yy, (xx - 0.5) ** 2 + (yy - 0.5) ** 2]) * 255
        img[:, 100:300, 150:350] = torch.tensor([200.0, 40.0, 60.0])[:, None, None]
        img = img.to(torch.uint8)
    img = torch.nn.functional.interpolate(img[None].float(), size=(size, size), mode="bilinear", align_corners=False)
    return img[0].round().clamp(0, 255).to(torch.uint8)


def _inference_batch(size, batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        {"image": torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8), "height": size, "width": size}
        for _ in range(batch)
    ]


def _train_batch(size, batch, num_classes, seed=0):
    """Random images with a few rectangular instances each (what a panoptic mapper produces)."""
    from detectron2.structures import BitMasks, Instances

    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        masks = torch.zeros(4, size, size, dtype=torch.bool)
        for i in range(4):
            y, x = torch.randint(0, size // 2, (2,), generator=gen).tolist()
            masks[i, y : y + size // 3, x : x + size // 3] = True
        inst = Instances((size, size))
        inst.gt_classes = torch.randint(0, num_classes, (4,), generator=gen)
        inst.gt_masks = BitMasks(masks)
        image = torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
        out.append({"image": image, "instances": inst, "height": size, "width": size})
    return out


def _time(fn, warmup, runs, device):
    for _ in range(warmup):
        fn()
        _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    peak, kind = _peak_mb(device)
    return {"latency_ms": round(statistics.median(times), 2), "latency_ms_runs": [round(t, 2) for t in times],
            "peak_memory_mb": round(peak, 1), "memory_kind": kind}


def _agreement(ref, got):
    """fp32 vs bf16 semantic outputs of one image: relative error of the fused class
    probabilities and the fraction of pixels with the same arg-max class."""
    a, b = ref["sem_seg"].float(), got["sem_seg"].float()
    return {
        "sem_seg_rel_error": float((a - b).norm() / a.norm().clamp_min(1e-12)),
        "sem_seg_same_argmax": float((a.argmax(0) == b.argmax(0)).float().mean()),
    }


class _Suite:
    def __init__(self, args, json_path, table_path):
        self.args = args
        self.json_path, self.table_path = json_path, table_path
        self.start = time.monotonic()
        self.longest = {}
        self.result = {
            "suite": "odise-ext device benchmark",
            "config": args.config_file,
            "device": args.device,
            "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu",
            "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda,
            "num_threads": torch.get_num_threads(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "budget_s": args.budget_s,
            "cells": [],
        }

    def elapsed(self):
        return time.monotonic() - self.start

    def cell(self, kind, name, fn, **info):
        rec = {"name": name, "kind": kind, **info}
        guess = self.longest.get(kind, 0.0)
        if self.elapsed() + guess > self.args.budget_s:
            rec.update(status="skipped", reason=f"time budget ({self.args.budget_s} s) would be exceeded")
        else:
            t0 = time.monotonic()
            try:
                rec.update(fn())
                rec["status"] = "ok"
                if "latency_ms" in rec and "batch_size" in info:
                    rec["images_per_s"] = round(1000 * info["batch_size"] / rec["latency_ms"], 3)
            except Exception as e:  # noqa: BLE001 - recorded, the suite goes on with other cells
                rec.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
                if self.args.device.startswith("cuda"):
                    torch.cuda.empty_cache()
            self.longest[kind] = max(guess, time.monotonic() - t0)
            rec["cell_s"] = round(time.monotonic() - t0, 2)
        print(json.dumps({k: v for k, v in rec.items() if k != "traceback"}), flush=True)
        self.result["cells"].append(rec)
        self.write()
        return rec

    def write(self):
        self.result["elapsed_s"] = round(self.elapsed(), 1)
        with open(self.json_path, "w") as f:
            json.dump(self.result, f, indent=1)
        if self.table_path:
            with open(self.table_path, "w") as f:
                f.write(markdown_table(self.result))


def markdown_table(result):
    lines = [
        f"Device: {result['device_name']} ({result['device']}), torch {result['torch_version']}, "
        f"CUDA {result['cuda_version']}, config `{result['config']}`, random weights.",
        "",
        "| cell | status | latency (median) | images/s | peak memory (MB) |",
        "|---|---|---|---|---|",
    ]
    for c in result["cells"]:
        lat = f"{c['latency_ms']:.1f} ms" if "latency_ms" in c else ""
        ips = f"{c['images_per_s']:.2f}" if "images_per_s" in c else ""
        mem = f"{c['peak_memory_mb']:.0f} ({c['memory_kind']})" if "peak_memory_mb" in c else ""
        status = c["status"] if c["status"] != "error" else f"error: {c['error'][:80]}"
        lines.append(f"| {c['name']} | {status} | {lat} | {ips} | {mem} |")
    if "agreement" in result:
        lines += ["", "fp32 vs bf16 on a fixed image: " + ", ".join(f"{k} {v:.4g}" for k, v in result["agreement"].items())]
    return "\n".join(lines) + "\n"


def run_suite(args, setup_cfg, json_path, table_path=None):
    """Run the suite; ``setup_cfg(args)`` is tools/benchmark.py's config builder."""
    from detectron2.modeling import build_model

    import odise_ext  # noqa: F401  (registers datasets, for the vocabulary, and models)
    from odise_ext.engine.optimizer import build_optimizer
    from odise_ext.diffusion.speed import compile_blocks

    suite = _Suite(args, json_path, table_path)
    device = args.device
    cfg = setup_cfg(SimpleNamespace(**{**vars(args), "dtype": "float32"}))
    t0 = time.monotonic()
    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()
    suite.result["build_s"] = round(time.monotonic() - t0, 1)
    suite.result["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    suite.result["frozen_params"] = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    suite.write()

    def infer(size, batch):
        inputs = _inference_batch(size, batch)

        def fn():
            with torch.no_grad():
                return model(inputs)

        return lambda: _time(fn, args.warmup, args.runs, device)

    def infer_cells(mode):
        for size in args.sizes:
            for batch in args.batch_sizes:
                suite.cell("infer_" + mode, f"infer {mode} {size}x{size} batch {batch}", infer(size, batch),
                           mode=mode, image_size=size, batch_size=batch)

    fixed = [{"image": natural_image(args.sizes[0]), "height": args.sizes[0], "width": args.sizes[0]}]

    def reference_output():
        with torch.no_grad():
            return {k: v.float().cpu() for k, v in model(fixed)[0].items() if k == "sem_seg"}

    infer_cells("fp32")
    ref = reference_output() or None

    _cast_frozen(model, torch.bfloat16)
    infer_cells("bf16")
    if ref is not None:
        suite.result["agreement"] = {"image_size": args.sizes[0], **_agreement(ref, reference_output())}
        suite.write()

    batch = _train_batch(args.train_size, args.train_batch, len(model.train_vocabulary))
    optimizer = build_optimizer(cfg, model)

    def train(amp):
        def step():
            model.train()
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=amp):
                losses = model(batch)
            total = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            if not torch.isfinite(total):
                raise FloatingPointError(f"non-finite training loss {total}")

        def run():
            out = _time(step, 1, args.train_runs, device)
            model.eval()
            return out

        return run

    for amp in (False, True):
        label = "bf16 frozen" + (", AMP bf16" if amp else "")
        suite.cell("train", f"train step {label} {args.train_size}x{args.train_size} batch {args.train_batch}",
                   train(amp), mode="train", amp=amp, image_size=args.train_size, batch_size=args.train_batch)

    model.eval()
    if args.compile_backend:
        count = sum(compile_blocks(m.module, args.compile_backend) for m in _frozen_modules(model))
        suite.result["compiled_blocks"] = count
        infer_cells("bf16+compile")
    suite.write()
    return suite.result
