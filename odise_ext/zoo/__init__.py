"""Released checkpoints by name: ``MODEL.WEIGHTS odise://label_coco_50e`` (and ``vpd://...``,
``metaprompts://...``) downloads, verifies, converts once and loads; see docs/zoo-downloads.md
(the entries: docs/model-zoo.md).

* :mod:`.catalog`  - the table of released checkpoints (:data:`ZOO`);
* :mod:`.download` - resumable, verified, file-locked HTTP downloads;
* :mod:`.resolve`  - name -> cached converted checkpoint (:func:`resolve`);
* :mod:`.convert`  - the release-format -> converter map;
* :mod:`.handler`  - the ``PathManager`` handler of the zoo schemes;
* :mod:`.hub`      - ``hf://`` SD weights and open_clip tags for the base weights;
* :mod:`.config`   - filling a zoo entry's base weights into a config.

``python -m odise_ext.zoo list`` prints the table and what is cached. Importing this package
imports no task package (the converters are imported when a file is converted).
"""
from .catalog import ZOO, ZooEntry, catalog, get_entry, is_zoo_uri
from .config import fill_zoo_base_weights
from .handler import register_zoo_handler
from .resolve import ZooError, resolve, zoo_cache_dir

__all__ = ["ZOO", "ZooEntry", "ZooError", "catalog", "fill_zoo_base_weights", "get_entry", "is_zoo_uri",
           "register_zoo_handler", "resolve", "zoo_cache_dir"]
