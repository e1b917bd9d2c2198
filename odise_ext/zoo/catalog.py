"""The released checkpoints odise-ext can fetch by name: one table, :data:`ZOO`.

Each entry is addressed as ``<scheme>://<name>`` (``odise://label_coco_50e``,
``vpd://nyu_depth``, ``metaprompts://ade20k`` ...), the value ``MODEL.WEIGHTS`` takes. An entry
records the download URL(s) exactly as the authors publish them and where each was read
(``source``), the expected sha256 (in full or its first hex digits; ODISE's file names carry
the first 8, detectron2 style) or None where none is published, the release format (the
converter that maps it onto our modules), the config it belongs to, and the base weights the
model needs besides (``MODEL.DIFFUSION.WEIGHTS`` / ``MODEL.CLIP.WEIGHTS``, see
:mod:`odise_ext.zoo.hub`), so that a zoo name alone is enough.

Mirrors and tests: ``$ODISE_EXT_ZOO_CATALOG`` names a JSON file ``{"<scheme>://<name>": {field:
value}}`` whose fields replace an entry's (or define a new entry), e.g. an organisation's mirror
with its own URLs, or the tests' loopback server with scaled-down checkpoints. JSON only: a
catalog file is data, never code. The table is cited in docs/model-zoo.md; downloads in
docs/zoo-downloads.md.
"""
import json
import os
from dataclasses import dataclass, fields, replace
from typing import Dict, Optional, Tuple

__all__ = ["CATALOG_ENV", "SCHEMES", "ZOO", "ZooEntry", "catalog", "get_entry", "is_zoo_uri", "split_uri"]

CATALOG_ENV = "ODISE_EXT_ZOO_CATALOG"
SCHEMES = ("odise", "vpd", "metaprompts")

# Base weights (MODEL.DIFFUSION.WEIGHTS / MODEL.CLIP.WEIGHTS syntax of odise_ext.zoo.hub).
SD_V1_3 = "hf://CompVis/stable-diffusion-v-1-3-original/sd-v1-3.ckpt"  # what ODISE downloads
# VPD / Meta-Prompts use SD v1.5 (runwayml's repository, since withdrawn: found in a user's
# Hugging Face cache if it was downloaded before; otherwise set MODEL.DIFFUSION.WEIGHTS).
SD_V1_5 = "hf://runwayml/stable-diffusion-v1-5/v1-5-pruned-emaonly.ckpt"
CLIP_L14_336 = "ViT-L-14-336/openai"  # open_clip tag of OpenAI's ViT-L-14-336px.pt

_ODISE_RELEASE = "https://github.com/NVlabs/ODISE/releases/download/v1.0.0/"
_ODISE_SOURCE = "NVlabs/ODISE odise/model_zoo/model_zoo.py (_ModelZooUrls: PREFIX + CONFIG_PATH_TO_URL_SUFFIX)"
_SUFFIX_HASH = "the file name's -<hex> suffix: the start of the file's sha256 (detectron2 model-zoo convention)"
_DRIVE = ("a cloud-drive share page, published as is: it may need a browser (confirmation page) or be gone; "
          "download it by hand into the cache path if the download fails")


@dataclass(frozen=True)
class ZooEntry:
    """One released checkpoint (see the module docstring)."""

    scheme: str  # "odise" | "vpd" | "metaprompts"
    name: str  # short name: the part after "<scheme>://"
    file_name: str  # name of the downloaded file in the cache (and on a mirror)
    urls: Tuple[str, ...]  # as published by the authors, tried in order; () = none published
    source: str  # repository and file each URL was read from
    release_format: str  # "odise" or a format registered in odise_ext.checkpoint.formats
    config: str  # config file (relative to the repository root)
    diffusion_weights: str  # MODEL.DIFFUSION.WEIGHTS it needs when that key is empty
    clip_weights: str = ""  # MODEL.CLIP.WEIGHTS it needs when empty ("" = no CLIP)
    sha256: Optional[str] = None  # expected sha256 (full or leading hex digits); None = unpublished
    checksum_source: str = "none published"
    note: str = ""  # caveats shown by `python -m odise_ext.zoo list` and in errors
    check_release_shapes: bool = True  # compare shapes with the released model (off: scaled-down mirrors)

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.name}"


def _odise(name, file_name, config):
    return ZooEntry(
        scheme="odise", name=name, file_name=file_name, urls=(_ODISE_RELEASE + file_name,), source=_ODISE_SOURCE,
        release_format="odise", config=config, diffusion_weights=SD_V1_3, clip_weights=CLIP_L14_336,
        sha256=file_name.rsplit("-", 1)[1].split(".")[0], checksum_source=_SUFFIX_HASH,
    )


def _drive(scheme, name, file_name, url, source, fmt, config, note=_DRIVE):
    return ZooEntry(scheme=scheme, name=name, file_name=file_name, urls=(url,) if url else (), source=source,
                    release_format=fmt, config=config, diffusion_weights=SD_V1_5, note=note)


_MP_SEG = "fudan-zvg/meta-prompts segmentation/README.md (Results and Fine-tuned Models)"
_MP_DEPTH = ("fudan-zvg/meta-prompts depth/.ipynb_checkpoints/README-checkpoint.md (Results and Fine-tuned Models; "
             "the same table in depth/README.md at a3e8583 has empty links)")

_ENTRIES = (
    _odise("label_coco_50e", "odise_label_coco_50e-b67d2efc.pth", "configs/odise_coco.yaml"),
    _odise("caption_coco_50e", "odise_caption_coco_50e-853cc971.pth", "configs/odise_caption_coco.yaml"),
    _drive("vpd", "nyu_depth", "vpd_depth_480x480.pth", "https://cloud.tsinghua.edu.cn/f/7e4adc76cc9b4200ac79/?dl=1",
           "wl-zhao/VPD depth/README.md (Fine-tuned Model: Tsinghua Cloud); file name from depth/test.sh usage",
           "vpd_depth", "configs/vpd/vpd_nyu_depth.yaml",
           note="Tsinghua Cloud direct link (?dl=1); may be gone"),
    _drive("vpd", "ade20k", "vpd_seg_ade20k.pth", "https://cloud.tsinghua.edu.cn/f/78ca31e53c5549779abd/?dl=1",
           "wl-zhao/VPD segmentation/README.md (VPDSeg_SD-1-5, Fine-tuned Model: Tsinghua Cloud)",
           "vpd_seg", "configs/vpd/vpd_ade20k_semseg.yaml", note="Tsinghua Cloud direct link (?dl=1); may be gone"),
    _drive("vpd", "refcoco", "vpd_ris_refcoco.pth", "https://cloud.tsinghua.edu.cn/f/78c884b131ec4d9d9fe5/?dl=1",
           "wl-zhao/VPD refer/README.md (Results and Fine-tuned Models of VPD, RefCOCO: Tsinghua Cloud; "
           "file name from its test.sh usage)", "vpd_refer", "configs/vpd/vpd_refcoco.yaml",
           note="Tsinghua Cloud direct link (?dl=1); may be gone"),
    _drive("metaprompts", "nyu_depth", "metaprompts_nyu_depth.pth",
           "https://drive.google.com/file/d/1IBZ34fCaD7vTpr4eS7Cq-gfJWDOzx54A/view?usp=sharing", _MP_DEPTH,
           "mp_depth", "configs/vpd/metaprompts_nyu_depth.yaml"),
    _drive("metaprompts", "kitti_depth", "metaprompts_kitti_depth.pth",
           "https://drive.google.com/file/d/1GpPKR5JcoD8nR9p-jeJ7fiQFWVSgL7lG/view?usp=sharing", _MP_DEPTH,
           "mp_depth", "configs/vpd/metaprompts_kitti_depth.yaml"),
    _drive("metaprompts", "ade20k", "metaprompts_ade20k.pth",
           "https://drive.google.com/file/d/1io1xGeteywZuK_OY2VG9fB8O-LtgyYN1/view?usp=sharing", _MP_SEG,
           "mp_seg_ade20k", "configs/vpd/metaprompts_ade20k_semseg.yaml"),
    _drive("metaprompts", "cityscapes", "metaprompts_cityscapes.pth",
           "https://drive.google.com/file/d/1uIMJUI-n557E5MydnZcl9Nq6FUKdYjQI/view?usp=sharing", _MP_SEG,
           "mp_seg_cityscapes", "configs/vpd/metaprompts_cityscapes_semseg.yaml"),
    _drive("metaprompts", "cityscapes_extra", "metaprompts_cityscapes_extra.pth",
           "https://drive.google.com/file/d/1kMcM_YSCCVsQA3DpUDT15t8Un-MEor3d/view?usp=sharing",
           _MP_SEG + ", CityScapes w/ Mapillary pretraining", "mp_seg_cityscapes_extra",
           "configs/vpd/metaprompts_cityscapes_extra_semseg.yaml"),
)

# The built-in table: "<scheme>://<name>" -> entry.
ZOO: Dict[str, ZooEntry] = {e.uri: e for e in _ENTRIES}


def is_zoo_uri(path) -> bool:
    """Whether ``path`` is written ``<scheme>://...`` with a zoo scheme."""
    return isinstance(path, str) and any(path.startswith(s + "://") for s in SCHEMES)


def split_uri(uri: str) -> Tuple[str, str]:
    scheme, _, name = uri.partition("://")
    return scheme, name.strip("/")


_FIELDS = {f.name for f in fields(ZooEntry)}


def _overrides(path: str) -> Dict[str, dict]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"${CATALOG_ENV}={path}: cannot read it as a JSON catalog ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"${CATALOG_ENV}={path}: expected {{\"<scheme>://<name>\": {{field: value}}}}")
    for uri, values in data.items():
        unknown = sorted(set(values) - _FIELDS)
        if not is_zoo_uri(uri) or unknown:
            raise ValueError(f"${CATALOG_ENV}={path}: entry {uri!r}: scheme must be one of {SCHEMES}"
                             + (f"; unknown fields {unknown} (known: {sorted(_FIELDS)})" if unknown else ""))
    return data


def catalog() -> Dict[str, ZooEntry]:
    """The built-in table with the entries of ``$ODISE_EXT_ZOO_CATALOG`` applied (read on each call)."""
    table = dict(ZOO)
    path = os.environ.get(CATALOG_ENV, "")
    if not path:
        return table
    for uri, values in _overrides(path).items():
        values = dict(values)
        if "urls" in values:
            values["urls"] = tuple(values["urls"])
        scheme, name = split_uri(uri)
        try:
            table[uri] = replace(table[uri], **values) if uri in table else ZooEntry(scheme=scheme, name=name, **values)
        except TypeError as e:
            raise ValueError(f"${CATALOG_ENV}={path}: entry {uri!r}: {e}") from None
    return table


def get_entry(uri: str) -> ZooEntry:
    """The entry named ``uri``; an unknown name is a ``KeyError`` listing the known ones."""
    table = catalog()
    uri = "{}://{}".format(*split_uri(uri))
    if uri not in table:
        raise KeyError(f"no model-zoo entry {uri!r}; known: {', '.join(sorted(table))} "
                       "(python -m odise_ext.zoo list)")
    return table[uri]
