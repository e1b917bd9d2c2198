"""Task entries in the shared registries: keyed by the registered object's name (public
``Registry.register``), found by the names the configs and dataset metadata use."""

import pytest

import odise_ext  # noqa: F401  (registers every task's entries)
from odise_ext.engine.demo import DEMO_REGISTRY, TaskDemo, demo_class, register_demo
from odise_ext.engine.evaluators import EVALUATOR_REGISTRY


def test_every_meta_architecture_with_a_demo_is_found_by_its_name():
    for arch in ("ODISE", "DenseSemanticSegmentor", "DenseDepthEstimator", "DenseReferSegmentor", "DensePoseEstimator"):
        cls = demo_class(arch)
        assert issubclass(cls, TaskDemo) and cls.__name__ == arch + "Demo"
    with pytest.raises(KeyError, match=r"no demo entry for NoSuchArch; models with one: \[.*'ODISE'"):
        demo_class("NoSuchArch")


def test_register_demo_checks_the_class_and_its_name():
    with pytest.raises(ValueError, match="<META_ARCHITECTURE>Demo"):
        register_demo(type("Viewer", (TaskDemo,), {}))
    with pytest.raises(TypeError, match="TaskDemo subclass"):
        register_demo(type("SomethingDemo", (), {}))
    assert "Viewer" not in DEMO_REGISTRY and "SomethingDemo" not in DEMO_REGISTRY


def test_evaluator_types_are_registered_under_their_names():
    names = {name for name, _ in EVALUATOR_REGISTRY}
    assert {"sem_seg", "coco", "coco_panoptic_seg", "ade20k_panoptic_seg", "png", "depth", "refer"} <= names
    for name, fn in EVALUATOR_REGISTRY:
        assert fn.__name__ == name
