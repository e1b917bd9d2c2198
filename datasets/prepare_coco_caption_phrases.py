#!/usr/bin/env python
"""Extract the noun phrases of every COCO caption, once, for ODISE's caption model.

Each caption of ``coco/annotations/captions_{split}2017.json`` is tokenized, part-of-speech
tagged and chunked into noun phrases (``odise_ext/data/noun_phrases.py``; ODISE's grammar:
adjectives and nouns ending with a noun, e.g. "red car"). The default tagger is NLTK's averaged
perceptron tagger; install it with::

    pip install nltk
    python -m nltk.downloader averaged_perceptron_tagger_eng

Output: ``coco/annotations/captions_{split}2017_noun_phrases.json``, ``{str(caption id):
[phrase, ...]}`` (lower-case, unique per caption, in order), read by the
``coco_2017_{split}_panoptic_caption_with_sem_seg`` datasets.

A complete existing output is kept unless ``--overwrite``. Usage::

    python datasets/prepare_coco_caption_phrases.py [--root DIR] [--splits val]
        [--tagger nltk | package.module:factory] [--keep-determiners]
"""
import argparse
import json
import os
import sys


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None,
                        help="datasets root (default: $DETECTRON2_DATASETS, else ./datasets)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    parser.add_argument("--overwrite", action="store_true", help="redo an existing output")
    parser.add_argument("--tagger", default="nltk",
                        help="'nltk' (default) or 'package.module:factory' returning a callable "
                             "tokens -> [(token, Penn tag)]")
    parser.add_argument("--keep-determiners", action="store_true",
                        help="keep a leading determiner ('a red car' instead of 'red car')")
    return parser


if __name__ == "__main__":  # --help and argument errors answer before the heavy imports below
    get_parser().parse_args()

from tqdm import tqdm

from odise_ext.data.datasets.prepare_utils import (
    missing_inputs,
    report_missing,
    resolve_root,
    save_json,
)
from odise_ext.data.datasets.register_coco import COCO_SOURCES, coco_paths
from odise_ext.data.noun_phrases import (
    DEFAULT_GRAMMAR,
    WITH_DETERMINERS,
    NounPhraseExtractor,
    TaggerUnavailableError,
    load_tagger,
)


def _load(path: str):
    with open(path) as f:
        return json.load(f)


def extract_split(root: str, split: str, extractor, overwrite: bool = False) -> int:
    """Write the noun-phrase json of one split; returns an exit status."""
    p = coco_paths(root, split)
    missing = missing_inputs([(p["captions_json"],
                               COCO_SOURCES["captions_json"].format(split=split))])
    if missing:
        return report_missing(missing)
    captions = _load(p["captions_json"]).get("annotations")
    if not captions:
        print(f"{p['captions_json']} has no 'annotations' list of captions", file=sys.stderr)
        return 1
    keys = {str(c["id"]) for c in captions}
    out = p["noun_phrases_json"]
    if not overwrite and os.path.isfile(out) and keys <= set(_load(out)):
        print(f"coco {split}: {out} covers all {len(keys)} captions, skipping "
              "(--overwrite to redo)")
        return 0
    phrases = {}
    for caption in tqdm(sorted(captions, key=lambda c: c["id"]), desc=f"coco {split}: captions",
                        unit="caption", dynamic_ncols=True):
        phrases[str(caption["id"])] = extractor(caption["caption"])
    save_json(phrases, out)
    empty = sum(1 for v in phrases.values() if not v)
    print(f"Wrote {out}: {len(phrases)} captions, {sum(map(len, phrases.values()))} phrases, "
          f"{empty} captions without a noun phrase")
    return 0


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        tagger = load_tagger(args.tagger)
    except TaggerUnavailableError as e:
        print(e, file=sys.stderr)
        return 1
    grammar = WITH_DETERMINERS if args.keep_determiners else DEFAULT_GRAMMAR
    extractor = NounPhraseExtractor(tagger, grammar)
    root = resolve_root(args.root)
    status = 0
    for split in args.splits:
        status |= extract_split(root, split, extractor, args.overwrite)
    return status


if __name__ == "__main__":
    sys.exit(main())
