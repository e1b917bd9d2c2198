#!/usr/bin/env python
"""Train or evaluate odise-ext models with detectron2's standard command line.

    python tools/train_net.py --config-file configs/odise_coco.yaml --num-gpus 8
    python tools/train_net.py --config-file configs/odise_coco.yaml --eval-only MODEL.WEIGHTS model.pth
    python tools/train_net.py --config-file configs/testing/odise_tiny.yaml --num-gpus 2 MODEL.DEVICE cpu

Multi-GPU / multi-node runs use detectron2's ``launch`` (torch.distributed; gloo when there is no
GPU). ``--resume`` continues from ``OUTPUT_DIR/last_checkpoint``, exactly: the same batches and
random draws as if the run had not stopped. Every file written here (``config.yaml``,
checkpoints, ``metrics.json``, evaluator outputs, ``eval_results.json``) appears only complete.
"""
import json
import os
import sys

# Run from a source checkout without installing: make `import odise_ext` find this repository.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from detectron2.engine import default_argument_parser, launch  # noqa: E402
from detectron2.evaluation import verify_results  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

import odise_ext  # noqa: E402,F401  (registers datasets, models, mappers)
from odise_ext.config import setup_cfg  # noqa: E402
from odise_ext.config.checks import check_cfg  # noqa: E402
from odise_ext.engine import AtomicCheckpointer, Trainer  # noqa: E402
from odise_ext.engine.job_setup import default_setup  # noqa: E402
from odise_ext.engine.weights_file import check_weights_file  # noqa: E402
from odise_ext.utils.atomic_io import atomic_write_bytes, remove_orphaned_tmp_files  # noqa: E402
from odise_ext.utils.cli import exit_on_config_error  # noqa: E402


def setup(args):
    cfg = setup_cfg(args.config_file, args.opts, freeze=True)
    if comm.is_main_process():
        remove_orphaned_tmp_files(cfg.OUTPUT_DIR)  # left by writes a killed run did not finish
    default_setup(cfg, args)  # detectron2's, with config.yaml appearing only complete
    # default_setup only configures detectron2's and fvcore's loggers: ours (e.g. the PNG, depth
    # and referring evaluators' tables) go to the same console and log file
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="odise_ext")
    if not (args.resume and os.path.lexists(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"))):
        check_weights_file(cfg.MODEL.WEIGHTS)  # a bad file named now, not after building the model
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        AtomicCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        res = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, res)
            write_results(cfg, res)
        return res
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    res = trainer.train()
    # detectron2 returns the results only when checking TEST.EXPECTED_RESULTS
    res = res or getattr(trainer, "_last_eval_results", None)
    if res and comm.is_main_process():
        write_results(cfg, res)
    return res


def main_in_process_group(args):
    """:func:`main`, then every process leaves the process group together: a process that exits
    while gloo's threads still run can abort ("terminate called without an active exception"),
    turning a finished run into a failed one."""
    res = main(args)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        comm.synchronize()
        torch.distributed.destroy_process_group()
    return res


def write_results(cfg, res):
    """Machine-readable results next to the log (tools/summarize_demo.py reads them)."""
    atomic_write_bytes(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), json.dumps(res, indent=2).encode())


@exit_on_config_error
def cli(argv=None):
    args = default_argument_parser().parse_args(argv)
    print("Command Line Args:", args)
    # every value checked before any process or model is started (one line naming the key)
    check_cfg(setup_cfg(args.config_file, args.opts), world_size=args.num_gpus * args.num_machines)
    return launch(
        main_in_process_group,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    cli()
