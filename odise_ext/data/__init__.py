from .build import DATASET_MAPPER_REGISTRY, build_dataset_mapper
from .datasets import register_all_builtin

register_all_builtin()

__all__ = ["DATASET_MAPPER_REGISTRY", "build_dataset_mapper", "register_all_builtin"]
