"""Config hygiene: every key the project defines is read somewhere, and an old config that sets a
renamed or removed key fails with one message naming the key and what replaced it."""
import os
import re
import subprocess
import sys

import pytest
from detectron2.config import get_cfg

import odise_ext  # noqa: F401  (registers every family's keys)
from odise_ext.config import get_odise_cfg, setup_cfg
from odise_ext.config.renamed import REMOVED, RENAMED

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_DEPTH = os.path.join(ROOT, "configs", "testing", "vpd_depth_tiny.yaml")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from count_config_keys import added_keys, leaf_keys  # noqa: E402


def _sources():
    """Text of every Python file under odise_ext/ and tools/ (where a key can be read)."""
    texts = []
    for top in ("odise_ext", "tools"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            for n in names:
                if n.endswith(".py"):
                    with open(os.path.join(dirpath, n)) as f:
                        texts.append(f.read())
    return texts


def _is_read(key, sources):
    """A leaf ``A.B.LEAF`` counts as read where some source accesses ``.LEAF`` (attribute or item)
    outside the line that defines it (``<node>.LEAF = ...``)."""
    leaf = key.rsplit(".", 1)[1]
    use = re.compile(r"(\.|\[\")" + re.escape(leaf) + r"\b(?!\s*=[^=])")
    return any(use.search(s) for s in sources)


def test_every_defined_key_is_read():
    sources = _sources()
    unread = [k for k in added_keys() if not _is_read(k, sources)]
    assert not unread, f"config keys defined but never read in odise_ext/ or tools/: {unread}"


def test_static_check_finds_an_unread_key():
    """The check itself: a key nobody reads is reported, a read one is not."""
    sources = ["cfg.MODEL.X.USED = 1\nvalue = cfg.MODEL.X.USED\n", "cfg.MODEL.X.UNUSED = 2\n"]
    assert _is_read("MODEL.X.USED", sources)
    assert not _is_read("MODEL.X.UNUSED", sources)


def test_old_keys_are_not_defined():
    defined = set(leaf_keys(get_odise_cfg()))
    assert not [k for k in (*RENAMED, *REMOVED) if k in defined and k not in leaf_keys(get_cfg())]
    assert all(v in defined for v in RENAMED.values()), [v for v in RENAMED.values() if v not in defined]


@pytest.mark.parametrize(
    "old, new",
    [("MODEL.VPD.DEPTH.HEAD_NAME", "MODEL.DEPTH_HEAD.NAME"), ("MODEL.VPD.TEST.FLIP", "TEST.DENSE.FLIP"),
     ("MODEL.VPD.BACKBONE.UNET_MODE", "MODEL.DIFFUSION.UNET_MODE")],
)
def test_renamed_key_in_opts_names_its_replacement(old, new):
    with pytest.raises(KeyError, match=re.escape(f"{old} is now {new}")):
        setup_cfg(TINY_DEPTH, [old, "x"])


def test_removed_key_in_a_base_file_says_why(tmp_path):
    """A removed key two _BASE_ levels down is found before anything is merged."""
    (tmp_path / "old_base.yaml").write_text(
        f"_BASE_: {TINY_DEPTH}\nMODEL:\n  VPD:\n    BACKBONE:\n      PAD_VALUE: 0.0\n    DEPTH:\n      CROP_FUSED: False\n"
    )
    (tmp_path / "old.yaml").write_text("_BASE_: old_base.yaml\nSOLVER:\n  MAX_ITER: 3\n")
    with pytest.raises(KeyError) as err:
        setup_cfg(str(tmp_path / "old.yaml"))
    msg = str(err.value)
    assert "old_base.yaml" in msg
    assert "MODEL.VPD.BACKBONE.PAD_VALUE was removed: dense models always pad with 0" in msg
    assert "MODEL.VPD.DEPTH.CROP_FUSED was removed" in msg


def test_count_script_runs():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "count_config_keys.py")],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ROOT},
    ).stdout
    total = int(out.strip().splitlines()[-1].split()[-1])
    assert total == len(added_keys()) and total > 0
