"""``odise://``, ``vpd://`` and ``metaprompts://`` paths for detectron2's ``PathManager``.

Registered with iopath's public extension API (``PathManager.register_handler``), as detectron2
does for ``detectron2://`` and ODISE for ``odise://``: ``PathManager.get_local_path(uri)`` (what
detectron2's ``DetectionCheckpointer.load`` calls for a path that is not a local file, and so
``DefaultPredictor``, ``tools/train_net.py --eval-only`` and the demos) returns the converted
checkpoint of :func:`odise_ext.zoo.resolve.resolve`.
"""
from typing import Any, List

from iopath.common.file_io import PathHandler

from .catalog import SCHEMES

__all__ = ["ZooPathHandler", "register_zoo_handler"]


class ZooPathHandler(PathHandler):
    """Resolves zoo names to local converted checkpoints (read-only)."""

    def _get_supported_prefixes(self) -> List[str]:
        return [s + "://" for s in SCHEMES]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        from .resolve import resolve

        self._check_kwargs(kwargs)
        return resolve(path)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        if any(c in mode for c in "wax+"):
            raise ValueError(f"{path}: zoo names are read-only (mode {mode!r})")
        self._check_kwargs(kwargs)
        return open(self._get_local_path(path), mode, buffering=buffering)

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        from .catalog import catalog, split_uri

        return "{}://{}".format(*split_uri(path)) in catalog()

    _exists = _isfile


_registered = []


def register_zoo_handler() -> None:
    """Register :class:`ZooPathHandler` with detectron2's ``PathManager`` (once per process)."""
    from detectron2.utils.file_io import PathManager

    if not _registered:
        PathManager.register_handler(ZooPathHandler())
        _registered.append(True)
