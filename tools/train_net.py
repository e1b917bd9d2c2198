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
import argparse
import json
import os
import sys

# Run from a source checkout without installing: make `import odise_ext` find this repository.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# torch, detectron2 and odise_ext are imported after the command line is parsed: --help and
# argument errors answer at once.


def get_parser():
    """detectron2's ``default_argument_parser`` (the same flags and defaults), without importing
    detectron2."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT_DIR/last_checkpoint (else start from MODEL.WEIGHTS)")
    p.add_argument("--eval-only", action="store_true", help="perform evaluation only")
    p.add_argument("--num-gpus", type=int, default=1, help="number of gpus (processes) *per machine*")
    p.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    p.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine (unique per machine)")
    # a port chosen per user, as detectron2 does: PyTorch still may leave it in TIME_WAIT state
    port = 2**15 + 2**14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2**14
    p.add_argument("--dist-url", default=f"tcp://127.0.0.1:{port}",
                   help="initialization URL for pytorch distributed backend ('auto': a free port)")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                   help="config overrides KEY VALUE ... at the end of the command")
    return p


def setup(args):
    from detectron2.utils import comm
    from detectron2.utils.logger import setup_logger

    from odise_ext.config.early_checks import checked_cfg, user_input_errors
    from odise_ext.engine.weights_file import check_weights_file
    from odise_ext.engine.job_setup import default_setup
    from odise_ext.utils.atomic_io import remove_orphaned_tmp_files

    cfg = checked_cfg(args.config_file, args.opts, weights=False)
    if comm.is_main_process():
        remove_orphaned_tmp_files(cfg.OUTPUT_DIR)  # left by writes a killed run did not finish
    default_setup(cfg, args)  # detectron2's, with config.yaml appearing only complete
    # default_setup only configures detectron2's and fvcore's loggers: ours (e.g. the PNG, depth
    # and referring evaluators' tables) go to the same console and log file
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="odise_ext")
    if not (args.resume and os.path.lexists(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint"))):
        with user_input_errors():
            check_weights_file(cfg.MODEL.WEIGHTS)  # a bad file named now, not after building the model
    return cfg


def main(args):
    from detectron2.evaluation import verify_results
    from detectron2.utils import comm

    from odise_ext.engine import AtomicCheckpointer, Trainer

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
    import torch
    from detectron2.utils import comm

    res = main(args)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        comm.synchronize()
        torch.distributed.destroy_process_group()
    return res


def write_results(cfg, res):
    """Machine-readable results next to the log (tools/summarize_demo.py reads them)."""
    from odise_ext.utils.atomic_io import atomic_write_bytes

    atomic_write_bytes(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), json.dumps(res, indent=2).encode())


def cli(argv=None):
    args = get_parser().parse_args(argv)
    print("Command Line Args:", args)
    from detectron2.engine import launch

    import odise_ext  # noqa: F401  (registers datasets, models, mappers)
    from odise_ext.config.early_checks import checked_cfg

    # config keys and values, MODEL.DEVICE, weight paths: named now, in this process, before any
    # worker process starts or any model is built
    checked_cfg(args.config_file, args.opts, weights=not args.resume, world_size=args.num_gpus * args.num_machines)
    return launch(
        main_in_process_group,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when run through runpy
    from one_line_errors import run

    run(cli)
