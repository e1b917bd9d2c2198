"""A corpus of files that run code when read by an unrestricted reader: every class of bypass known
for restricted unpicklers, plus YAML tags. Each payload, if it ran, creates ``marker``.

``pickle_payloads(marker)`` -> ``{name: (bytes, word the refusal must name)}``, hand-assembled
from opcodes (``pickle.loads`` of each creates the marker: checked by the tests, so every entry
is a real payload). The other builders write whole files (zip / legacy / TorchScript / YAML).
"""
import io
import pickle
import struct
import warnings
import zipfile

import torch


def _u(s: str) -> bytes:  # BINUNICODE
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _su(s: str) -> bytes:  # SHORT_BINUNICODE (protocol 4)
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def _stack_global(module, name):
    return _su(module) + b"\x94" + _su(name) + b"\x94\x93"  # MEMOIZE, STACK_GLOBAL


def pickle_payloads(marker) -> dict:
    m = str(marker)
    py = f"open({m!r}, 'w').write('ran')"
    sh = f"touch {m}"
    p2, p4 = b"\x80\x02", b"\x80\x04"
    builtins_get = lambda mod: _call(_call(_stack_global(mod, "__builtins__.get"), _su("eval")), _su(py))  # noqa: E731
    return {
        "os.system": (p2 + _call(b"cos\nsystem\n", _u(sh)) + b".", "os.system"),
        "posix.system": (p2 + _call(b"cposix\nsystem\n", _u(sh)) + b".", "posix.system"),
        "subprocess.getoutput": (p2 + _call(b"csubprocess\ngetoutput\n", _u(sh)) + b".", "subprocess.getoutput"),
        "builtins.eval": (p2 + _call(b"cbuiltins\neval\n", _u(py)) + b".", "eval"),
        "builtins.exec": (p2 + _call(b"c__builtin__\nexec\n", _u(py)) + b".", "exec"),
        # getattr(__import__('os'), 'system')('touch ...')
        "builtins.getattr": (p2 + _call(_call(b"cbuiltins\ngetattr\n", _call(b"cbuiltins\n__import__\n", _u("os")), _u("system")),
                                        _u(sh)) + b".", "getattr"),
        # protocol 4 dotted names: attribute chains from an allowed-looking module to eval
        "numpy.dtypes.__builtins__.get": (p4 + builtins_get("numpy.dtypes") + b".", "numpy.dtypes.__builtins__.get"),
        "numpy+dtypes.__builtins__": (p4 + _call(_call(_stack_global("numpy", "dtypes.__builtins__.get"), _su("eval")), _su(py)) + b".",
                                      "dtypes.__builtins__"),
        "torch.nn.modules.module.__builtins__": (p4 + builtins_get("torch.nn.modules.module") + b".", "__builtins__.get"),
        "numpy.core.multiarray.__builtins__": (p4 + builtins_get("numpy.core.multiarray") + b".", "__builtins__.get"),
        # an allowed function's attributes lead to eval: _frombuffer.__builtins__.get('eval')
        "allowed-global-chain": (p4 + _call(_call(_stack_global("numpy._core.numeric", "_frombuffer.__builtins__.get"), _su("eval")), _su(py))
                                 + b".", "_frombuffer.__builtins__.get"),
        # BUILD sets __setstate__ on an allowed instance; the second BUILD would call it
        "build-setstate": (p2 + b"ccollections\nOrderedDict\n)R" + b"}" + _u("__setstate__") + b"cbuiltins\nexec\n" + b"sb"
                           + _u(py) + b"b.", "exec"),
        "INST": (b"(S'" + sh.encode() + b"'\nios\nsystem\n.", "os.system"),
        "OBJ": (b"(cos\nsystem\nS'" + sh.encode() + b"'\no.", "OBJ"),
        "persistent-id": (p2 + _call(b"cos\nsystem\n", _u(sh)) + b"Q.", "persistent id"),
        "text-global-proto0": (b"cos\nsystem\n(S'" + sh.encode() + b"'\ntR.", "os.system"),
    }


def zip_checkpoint(path, data_pkl: bytes):
    """A ``torch.save`` zip archive of ``{"w": tensor}`` whose ``data.pkl`` is replaced by ``data_pkl``."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            out.writestr(info, data_pkl if info.filename.endswith("/data.pkl") else src.read(info))


def legacy_checkpoint(path, obj):
    """``torch.save`` in the pre-1.6 (non-zip) format."""
    torch.save(obj, path, _use_new_zipfile_serialization=False)


def torchscript_archive(path, inject: bytes):
    """A TorchScript archive (with code) whose ``data.pkl`` becomes ``inject``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            out.writestr(info, inject if info.filename.endswith("/data.pkl") and info.filename.count("/") == 1 else src.read(info))


def yaml_payloads(marker) -> dict:
    """``{name: (yaml text, word the refusal must name)}``."""
    sh = f"touch {marker}"
    return {
        "object/apply": (f'MODEL:\n  WEIGHTS: !!python/object/apply:os.system ["{sh}"]\n', "python/object/apply:os.system"),
        "name": ("MODEL:\n  WEIGHTS: !!python/name:os.system\n", "python/name:os.system"),
        "module": ("MODEL:\n  WEIGHTS: !!python/module:os\n", "python/module:os"),
    }


def loads_runs_marker(data: bytes, marker) -> bool:
    """Whether full ``pickle.loads`` of ``data`` creates ``marker`` (the payload is real)."""
    try:
        pickle.loads(data, encoding="latin1")
    except Exception:  # noqa: BLE001 - some payloads fail after running
        pass
    return marker.exists()
