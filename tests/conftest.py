"""Test-session setup shared by every test module.

The embedded shapes dataset is generated into a cache directory; tests use one directory per
test session (unless ODISE_EXT_CACHE is already set), so a run never depends on, nor pollutes,
the user's cache.
"""
import os
import shutil
import tempfile

import pytest

_SESSION_CACHE = None  # the cache directory this test session made (removed when it ends)
if "ODISE_EXT_CACHE" not in os.environ:
    _SESSION_CACHE = os.environ["ODISE_EXT_CACHE"] = tempfile.mkdtemp(prefix="odise_ext_test_cache_")

import torch  # noqa: E402

# The tests run many small ops: on a 2-core machine one intra-op thread is faster than two
# (thread hand-off costs more than it saves), and it leaves a core to subprocess-based tests.
torch.set_num_threads(1)


def pytest_configure(config):
    # `make test` (pytest -q tests) runs every test, slow ones included; `-m "not slow"` skips the
    # end-to-end runs (training a tiny model for tens of steps, multi-process train_net).
    config.addinivalue_line("markers", "slow: end-to-end training or multi-process run (minutes on a loaded CPU)")
    # see "the `cuda` marker" below
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one)")


def pytest_unconfigure(config):
    if _SESSION_CACHE is not None:  # the session's generated datasets: nothing left behind in /tmp
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


def make_cfg(path=None, *opts):
    """A detectron2 config with every odise-ext key, ``path`` merged (if given), then ``opts``.

    The one config helper of the tests: test modules import it or wrap it with their defaults
    (``tiny_cfg = partial(make_cfg, TINY, ...)``)."""
    from odise_ext.config import get_odise_cfg

    cfg = get_odise_cfg()
    if path:
        cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    return cfg


@pytest.fixture(scope="session")
def shapes_root():
    """The default embedded shapes dataset, generated once per test session."""
    from odise_ext.data.datasets.shapes_world import ensure_shapes_world

    return ensure_shapes_world()


# ---- the `cuda` marker ---------------------------------------------------------------------
# Tests (or parameters, see DEVICES) marked `cuda` need a GPU: they are skipped without one, and
# `pytest -m cuda` runs exactly them (scripts/device_check.sh does that on the GPU machine).
# (The marker is registered in pytest_configure above: a second pytest_configure in this file
# would replace the first.)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


# Parametrise a test over devices with `@pytest.mark.parametrize("device", DEVICES)`: the CPU
# variant always runs, so the code path is tested on machines without a GPU too.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
