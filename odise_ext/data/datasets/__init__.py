"""Built-in datasets. ``register_all_builtin()`` registers every name once (idempotent)."""
from .register_png import register_all_png
from .register_real import register_all_real
from .register_shapes import register_all_shapes
from .register_vpd import register_all_vpd

__all__ = ["register_all_builtin"]


def register_all_builtin():
    register_all_shapes()
    register_all_png()
    register_all_real()
    register_all_vpd()
