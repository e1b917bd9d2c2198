"""The shared packages know no task, and no import works only because of import order."""
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import odise_ext

ROOT = Path(odise_ext.__file__).parent
SHARED = ("config", "engine", "data", "utils", "diffusion", "mask2former")
TASKS = ("odise", "png", "vpd", "metaprompts", "dense", "web")


def _imported_modules(path: Path, module: str):
    """Absolute names of every module ``path`` (module ``module``) imports, at any depth."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            # "from . import x" / "from .. import odise" name modules in the names too
            yield prefix
            yield from (f"{prefix}.{a.name}" for a in node.names)


def _task_of(name: str):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "odise_ext" and parts[1] in TASKS else None


def test_resolver_sees_relative_and_nested_imports(tmp_path):
    """The walker below would miss nothing: relative, parent-relative and function-local imports."""
    pkg = tmp_path / "mod.py"
    pkg.write_text("from ..odise.x import y\nfrom .. import png\ndef f():\n    import odise_ext.dense.heads\n")
    found = {_task_of(n) for n in _imported_modules(pkg, "odise_ext.engine.mod")} - {None}
    assert found == {"odise", "png", "dense"}
    init = tmp_path / "__init__.py"
    init.write_text("from .trainer import Trainer\n")
    assert "odise_ext.engine.trainer" in set(_imported_modules(init, "odise_ext.engine"))


@pytest.mark.parametrize("package", SHARED)
def test_shared_package_imports_no_task_package(package):
    offending = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if path.name == "__init__.py" else rel.parts)
        for name in _imported_modules(path, module):
            if _task_of(name):
                offending.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not offending, "shared packages must not import task packages:\n" + "\n".join(sorted(set(offending)))


FAMILIES = ["data", "diffusion", "mask2former", "odise", "png", "vpd", "metaprompts", "dense"]
ORDERS = [
    FAMILIES,
    FAMILIES[::-1],
    ["dense", "metaprompts", "png", "mask2former", "vpd", "data", "odise", "diffusion"],
    ["vpd", "png", "dense", "diffusion", "odise", "metaprompts", "mask2former", "data"],
]


def _run(code: str, root: Path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]


def test_engine_imports_alone_first():
    _run("import odise_ext.engine, odise_ext.engine.demo, odise_ext.config\nimport odise_ext.web.build\n", ROOT.parent)


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_package_import_order_does_not_matter(order, tmp_path):
    """A copy of the package whose ``__init__`` imports the families in ``order`` (and nothing
    else first) imports, registers every model and builds the web demo's registry."""
    copy = tmp_path / "odise_ext"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    init = (copy / "__init__.py").read_text()
    head, _, tail = init.partition("from .config import")
    lines = [line for line in ("from .config import" + tail).splitlines()
             if not line.startswith(("from .config import", "from . import"))]
    body = "".join(f"from . import {name}  # noqa: F401\n" for name in order)
    (copy / "__init__.py").write_text(head + body + "from .config import add_odise_config, get_odise_cfg, setup_cfg\n"
                                      + "\n".join(lines) + "\n")
    _run("import odise_ext\nassert odise_ext.__file__.startswith(%r)\n"
         "from detectron2.modeling import META_ARCH_REGISTRY\n"
         "from odise_ext.engine.demo import DEMO_REGISTRY\n"
         "for arch in ('ODISE', 'PNGDiffusion', 'DenseSemanticSegmentor', 'DenseDepthEstimator',\n"
         "             'DenseReferSegmentor', 'DensePoseEstimator'):\n"
         "    META_ARCH_REGISTRY.get(arch); assert DEMO_REGISTRY.get(arch + 'Demo').web_title\n"
         "import odise_ext.web.build\n" % str(copy), tmp_path)


def test_every_project_meta_architecture_has_the_engine_hooks():
    from detectron2.modeling import META_ARCH_REGISTRY

    from odise_ext.engine.model_hooks import EvaluatedModel, evaluated_model

    ours = {name: cls for name, cls in META_ARCH_REGISTRY if cls.__module__.startswith("odise_ext.")}
    assert {"ODISE", "PNGDiffusion", "DenseSemanticSegmentor", "DenseDepthEstimator", "DenseReferSegmentor",
            "DensePoseEstimator"} <= set(ours)
    assert [n for n, cls in ours.items() if not issubclass(cls, EvaluatedModel)] == []
    assert META_ARCH_REGISTRY.get("DensePoseEstimator").coco_eval_tasks == ("keypoints",)
    assert META_ARCH_REGISTRY.get("DenseSemanticSegmentor").coco_eval_tasks is None
    with pytest.raises(TypeError, match="does not derive from odise_ext.engine.model_hooks.EvaluatedModel"):
        evaluated_model(object())
