"""The globals a plain pickle may use, each charging what it would allocate to a per-file budget.

A data pickle holds its bytes: an array's data, a string, a ``bytes`` value all lie in the file.
Its constructors, though, take sizes that the file merely declares: ``_reconstruct(ndarray,
(2**40,), 'b')`` or ``ndarray((2**40,))`` allocate a terabyte from a few bytes, an object array
whose ``__setstate__`` gets a list shorter than its shape reads past the list (numpy crashes),
and one memoised ``bytes`` value handed to many byte-swapped arrays, ``bytearray`` or
``_codecs.encode`` calls is copied once per use. :func:`bounded_plain_globals` gives, for one
file, the allow-list of :data:`PLAIN_ALLOWED` names bound to wrappers that add each call's
declared size to a :class:`Budget` and refuse (:class:`PickleBudgetError`) once the total passes
the budget's limit, before allocating. Arrays are built as :class:`Budget`'s own ``ndarray``
subclass so that ``BUILD`` (``__setstate__``) is checked too; :meth:`Budget.finish` turns them
back into plain ``numpy.ndarray`` views (no copy). Nothing here is module state: each read makes
its own budget and wrappers.
"""
import codecs
import collections
import math
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
from numpy._core import multiarray, numeric

__all__ = ["BOUNDED_MODULE_PREFIX", "PLAIN_ALLOWED", "Budget", "PickleBudgetError", "bounded_plain_globals"]

# the rewritten stream names every allowed global as BOUNDED_MODULE_PREFIX + its module, so that
# torch's unpickler finds only the wrappers below (its own default allow-list is never reached)
BOUNDED_MODULE_PREFIX = "odise_ext_bounded."
_NUMPY_MODULES = ("numpy.core", "numpy._core")  # the names numpy 1 / numpy 2 pickles give
_DTYPE_CLASSES = sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGSUV"}, key=str)


class PickleBudgetError(ValueError):
    """A pickle that declares more memory than its file could hold the data for."""


def _declared_bytes(shape, dtype) -> int:
    """Bytes an array of ``shape`` (int or sequence of ints) and ``dtype`` takes; ValueError if malformed."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        raise ValueError(f"an array shape of non-negative integers, got {shape!r}")
    return math.prod(dims) * np.dtype(dtype).itemsize


def _sized(args) -> int:
    """What a copying constructor (set, bytearray, OrderedDict, codecs.encode) takes for ``args``."""
    total = 0
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool):
            total += max(a, 0)  # bytearray(n)
        elif hasattr(a, "__len__"):
            total += len(a)
    return total


class Budget:
    """Bytes declared so far by one file's constructors, against ``limit``; ``describe`` names the
    file and the limit in the refusal."""

    def __init__(self, limit: int, describe: Callable[[str, int], str]):
        self.limit, self.used, self._describe = int(limit), 0, describe
        budget = self

        class BoundedArray(np.ndarray):
            """numpy.ndarray whose construction and __setstate__ charge ``budget``."""

            def __new__(cls, shape, dtype=float, buffer=None, offset=0, strides=None, order=None):
                if buffer is None:
                    budget.charge(_declared_bytes(shape, dtype), f"numpy.ndarray of shape {shape!r}")
                return np.ndarray.__new__(cls, shape, dtype, buffer, offset, strides, order)

            def __setstate__(self, state):
                # (version, shape, dtype, is_fortran, data), or without the version
                shape, dtype, _fortran, raw = state[1:] if len(state) == 5 else state
                nbytes = _declared_bytes(shape, dtype)
                budget.charge(nbytes, f"an array of shape {tuple(shape)!r} and dtype {np.dtype(dtype)}")
                if np.dtype(dtype).hasobject and (not isinstance(raw, list) or len(raw) != math.prod(shape)):
                    raise budget.refusal(
                        f"an object array of shape {tuple(shape)!r} with {len(raw) if isinstance(raw, list) else 'no'} "
                        "items (its data must list every item)", nbytes)
                return np.ndarray.__setstate__(self, state)

        self.array_class = BoundedArray

    def charge(self, nbytes: int, what: str) -> None:
        """Add ``nbytes`` for ``what``; PickleBudgetError once the total passes the limit."""
        self.used += nbytes
        if self.used > self.limit:
            raise self.refusal(what, nbytes)

    def refusal(self, what: str, nbytes: int) -> PickleBudgetError:
        """The error for ``what``, which declared ``nbytes``."""
        return PickleBudgetError(self._describe(what, nbytes))

    def finish(self, obj: Any) -> Any:
        """``obj`` with every bounded array replaced by a plain ``numpy.ndarray`` view of its data
        (containers changed in place, tuples rebuilt; shared references stay shared)."""
        done: Dict[int, Any] = {}
        keep: List[Any] = []  # the objects walked stay alive, so that their ids are not reused

        def walk(x):
            if id(x) in done:
                return done[id(x)]
            keep.append(x)
            if isinstance(x, self.array_class):
                done[id(x)] = view = x.view(np.ndarray)
                if view.dtype.hasobject:
                    for i, item in enumerate(view.flat):
                        view.flat[i] = walk(item)
                return view
            if isinstance(x, list):
                done[id(x)] = x
                x[:] = [walk(v) for v in x]
            elif isinstance(x, dict):
                done[id(x)] = x
                for k in list(x):
                    x[k] = walk(x[k])
            elif isinstance(x, tuple):
                done[id(x)] = x
                done[id(x)] = rebuilt = tuple(walk(v) for v in x)
                return rebuilt
            return x

        return walk(obj)


def _charging(budget: Budget, name: str, fn: Callable, cost: Callable[..., int]) -> Callable:
    def bounded(*args, **kwargs):
        budget.charge(cost(*args), name)
        return fn(*args, **kwargs)

    bounded.__name__ = bounded.__qualname__ = name
    return bounded


def bounded_plain_globals(budget: Budget) -> List[Tuple[Any, str]]:
    """``(object, full name)`` pairs for ``torch.serialization.safe_globals``: every name of
    :data:`PLAIN_ALLOWED`, under :data:`BOUNDED_MODULE_PREFIX`, bound to a charging wrapper (or,
    for dtypes, which allocate nothing, to itself)."""
    arr = budget.array_class

    def reconstruct(subtype, shape, dtype):
        budget.charge(_declared_bytes(shape, dtype), f"numpy _reconstruct of shape {shape!r}")
        return multiarray._reconstruct(subtype, shape, dtype)

    def frombuffer(buf, dtype, shape, order):
        budget.charge(_declared_bytes(shape, dtype), f"numpy _frombuffer of shape {shape!r}")
        return numeric._frombuffer(buf, dtype, shape, order)

    scalar = _charging(budget, "numpy scalar", multiarray.scalar, lambda dtype, *a: np.dtype(dtype).itemsize)
    table: Dict[str, Any] = {
        "numpy.ndarray": arr, "numpy.dtype": np.dtype,
        **{f"{c.__module__}.{c.__qualname__}": c for c in _DTYPE_CLASSES},
        **{f"{m}.multiarray._reconstruct": reconstruct for m in _NUMPY_MODULES},
        **{f"{m}.multiarray.scalar": scalar for m in _NUMPY_MODULES},
        **{f"{m}.numeric._frombuffer": frombuffer for m in _NUMPY_MODULES},
        "_codecs.encode": _charging(budget, "_codecs.encode", codecs.encode, lambda s, *a: _sized((s,))),
        "collections.OrderedDict": _charging(budget, "OrderedDict", collections.OrderedDict, lambda *a: 8 * _sized(a)),
    }
    for py in ("builtins", "__builtin__"):  # protocols 0-2 write Python 2's name
        table[f"{py}.complex"] = complex
        table[f"{py}.set"] = _charging(budget, "set", set, lambda *a: 8 * _sized(a))
        table[f"{py}.bytearray"] = _charging(budget, "bytearray", bytearray, lambda *a: _sized(a[:1]))
    return [(obj, BOUNDED_MODULE_PREFIX + name) for name, obj in table.items()]


# what a plain pickle may name (checked before it is read, and by scan_pickle)
PLAIN_ALLOWED = frozenset(name[len(BOUNDED_MODULE_PREFIX):] for _o, name in bounded_plain_globals(Budget(0, str)))
