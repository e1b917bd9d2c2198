#!/usr/bin/env python
"""A web page to try a model: drop an image, type a vocabulary / narrative / sentence, see the
result. One tab per config file (its model's task); each model is built once and stays loaded.
With --picker (or with no --config-file / --model), one tab per task instead, each with a model
dropdown over the model-zoo entries of that task (and the models given here).

    python tools/web_demo.py --config-file configs/testing/odise_tiny.yaml          # random weights
    python tools/web_demo.py                                                         # zoo picker
    python tools/web_demo.py --config-file configs/odise_coco.yaml --port 7860 \\
        --opts MODEL.WEIGHTS model.pth

Serves on 127.0.0.1 only. Nothing is requested from the internet: Gradio analytics are off, the
page uses system fonts, no share link is made, and Hugging Face Hub is put in offline mode
(HF_HUB_OFFLINE=1 unless set), so diffusion / CLIP weights must be local or cached.
``--opts`` applies to every config file.
"""
import argparse
import os
import sys

# before gradio / huggingface_hub are imported: they read these at import time
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", nargs="+", default=[], help="one or more configs (one tab each)")
    p.add_argument("--model", nargs="+", default=[],
                   help="zoo names, e.g. odise://label_coco_50e vpd://nyu_depth (one tab each, with the entry's "
                        "config; fetched and converted on first use; python -m odise_ext.zoo list)")
    p.add_argument("--picker", action="store_true",
                   help="one tab per task with a model dropdown over the zoo entries (default without "
                        "--config-file / --model); the models given here are choices too")
    p.add_argument("--max-models", type=int, default=2,
                   help="zoo models the picker keeps loaded (the least recently chosen is unloaded)")
    p.add_argument("--port", type=int, default=7860, help="port on 127.0.0.1 (0: the first free one from 7860)")
    p.add_argument("--tagger", default="nltk", help="PNG noun-phrase tagger: 'nltk' or 'package.module:factory'")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    return p


def _zoo_model(name, opts):
    """(config file, opts) of zoo entry ``name``, its checkpoint fetched and converted now."""
    from odise_ext.zoo import ZooError, get_entry, resolve

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        entry = get_entry(name)
        resolve(name)
    except (KeyError, ZooError) as e:
        raise SystemExit(str(e).strip("'\""))
    return os.path.join(root, entry.config), ["MODEL.WEIGHTS", entry.uri, *opts]


def main(argv=None):
    # a bad config value (ConfigError, marked one_line) is printed as one line by
    # tools/one_line_errors.py when run from the command line
    return _serve(get_parser().parse_args(argv))


def _serve(args):
    from odise_ext.config.early_checks import checked_cfg
    from odise_ext.web import build_app, build_session, local_theme
    from odise_ext.web.inputs import MAX_UPLOAD_BYTES

    if args.max_models < 1:
        raise SystemExit(f"--max-models must be at least 1, got {args.max_models}")
    for f in args.config_file:  # keys, values, device, weight paths: before any model is built
        checked_cfg(f, args.opts)

    sessions = [build_session(*_zoo_model(name, args.opts)) for name in args.model]
    sessions += [build_session(f, args.opts) for f in args.config_file]
    picker = None
    if args.picker or not sessions:
        from odise_ext.web.picker import ModelPicker

        picker = ModelPicker(args.opts, max_loaded=args.max_models)
        for key, session in zip(args.model + args.config_file, sessions):
            picker.add(key, session)
    app = build_app(sessions, tagger=args.tagger, picker=picker)
    app.queue(default_concurrency_limit=1).launch(
        server_name="127.0.0.1", server_port=args.port or None, share=False, inbrowser=False,
        theme=local_theme(), max_file_size=MAX_UPLOAD_BYTES,
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/, also when run through runpy
    from one_line_errors import run

    run(main)
