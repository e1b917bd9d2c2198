"""Registration helpers shared by the real-dataset modules (COCO, ADE20K, PASCAL).

- :func:`register_once` / :func:`claim_dataset_name`: the policy for names that are already
  registered, which keeps ``register_all_real`` idempotent;
- :func:`require_paths`: the load-time check that names every missing input and how to make it;
- :func:`load_json`: json decoding whose errors name the file;
- :func:`register_sem_seg_files`: semantic-segmentation registration for any label format
  (16-bit TIFF labels with ignore value 65535 for ADE20K-847 and PASCAL-Context-459).
"""
import json
import logging
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_sem_seg

__all__ = [
    "DATASET_ROOT_KEY",
    "claim_dataset_name",
    "load_json",
    "default_datasets_root",
    "require_paths",
    "register_once",
    "register_sem_seg_files",
]

logger = logging.getLogger(__name__)

# Metadata key marking a registration made by odise_ext, and for which datasets root.
DATASET_ROOT_KEY = "dataset_root"


def default_datasets_root() -> str:
    """``$DETECTRON2_DATASETS``, else ``datasets`` (detectron2's convention), made absolute."""
    return os.path.abspath(os.getenv("DETECTRON2_DATASETS", "datasets"))


def claim_dataset_name(name: str, root: str) -> bool:
    """Whether ``name`` must be registered now for data under ``root``.

    - not registered: True;
    - registered by odise_ext for the same root: False (idempotent);
    - registered by odise_ext for another root: ``ValueError`` (two roots cannot share a name);
    - registered by other code (e.g. detectron2's built-in ``ade20k_sem_seg_*``, which uses
      another layout and lacks ODISE's synonyms): that registration is removed (logged) and True
      is returned.
    """
    if name in DatasetCatalog.list():
        found = MetadataCatalog.get(name).get(DATASET_ROOT_KEY, None)
        if found == root:
            return False
        if found is not None:
            raise ValueError(
                f"Dataset '{name}' is already registered for datasets root {found}, not {root}; "
                "register_all_real() takes one root per process"
            )
        logger.info(
            "Replacing the registration of dataset '%s' (image_root=%s) by odise_ext's, under %s",
            name, MetadataCatalog.get(name).get("image_root", "?"), root,
        )
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        # Stale metadata (from other code, or a catalog entry created by MetadataCatalog.get)
        # would make .set() fail on any differing key.
        MetadataCatalog.remove(name)
    return True


def register_once(name: str, root: str, register: Callable[[], None]) -> None:
    """Call ``register()`` (which registers ``name``) unless :func:`claim_dataset_name` says
    ``name`` is already registered for ``root``; then mark the registration as ours."""
    if claim_dataset_name(name, root):
        register()
        MetadataCatalog.get(name).set(**{DATASET_ROOT_KEY: root})


def load_json(path: str, missing: str = ""):
    """``json.load`` of ``path``; a file that is not JSON is a ``ValueError`` naming it.
    ``missing``: the ``FileNotFoundError`` message when ``path`` is not a file (default: the
    ``open`` error)."""
    if missing and not os.path.isfile(path):
        raise FileNotFoundError(missing)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({len(data)} bytes): {e}") from None


def require_paths(dataset_name: str, required: Sequence[Tuple[str, str]]) -> None:
    """Raise ``FileNotFoundError`` naming every missing path and how to obtain it.

    Args:
        required: ``(path, how to get it)`` pairs; a path may be a file or a directory.
    """
    missing = [(p, how) for p, how in required if not os.path.exists(p)]
    if missing:
        lines = [f"  missing {p}\n    -> {how}" for p, how in missing]
        raise FileNotFoundError(
            f"Dataset '{dataset_name}' cannot be loaded:\n" + "\n".join(lines)
            + "\n(see datasets/README.md)"
        )


def register_sem_seg_files(
    name: str,
    metadata: Dict[str, object],
    image_root: str,
    sem_seg_root: str,
    *,
    gt_ext: str,
    ignore_label: int,
    prepare_fn: Optional[Callable[[], object]] = None,
) -> None:
    """Register a semantic-segmentation dataset (``file_name``, ``sem_seg_file_name`` dicts,
    images ``*.jpg`` and labels ``*.{gt_ext}`` matched by file stem); reads nothing now."""
    if "stuff_classes" not in metadata:
        raise ValueError(f"Semantic segmentation metadata of {name} needs 'stuff_classes'")

    def load():
        if prepare_fn is not None:
            prepare_fn()
        return load_sem_seg(sem_seg_root, image_root, gt_ext=gt_ext, image_ext="jpg")

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(
        image_root=image_root,
        sem_seg_root=sem_seg_root,
        evaluator_type="sem_seg",
        ignore_label=ignore_label,
        **metadata,
    )
