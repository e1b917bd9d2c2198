"""Rewriting any pickle protocol (0-5) into the opcode subset PyTorch's weights-only unpickler reads.

``torch._weights_only_unpickler.Unpickler`` is the maintained restricted unpickler: it checks
every ``GLOBAL`` against an exact allow-list of full names (no attribute chains), calls only
allowed functions and builds only allowed types. It reads protocol 2 as ``torch.save`` writes it;
plain pickles (detectron2 model-zoo ``.pkl`` files, dataset index files) are often protocol 0 or
4 (``STACK_GLOBAL``, ``FRAME``, ``MEMOIZE``, text opcodes). :func:`to_weights_only_opcodes`
rewrites a pickle into that subset without building any object: each opcode becomes one with
the same effect (``STACK_GLOBAL`` of two literal strings becomes ``GLOBAL module name``; bytes
become ``_codecs.encode(str, 'latin1')``, as protocol 2 writes them). Opcodes that have no place
in a data file (``INST``, ``OBJ``, ``NEWOBJ_EX``, ``EXT*``, persistent ids, ``POP``/``DUP``,
out-of-band buffers, sets built by ``ADDITEMS``) and a ``STACK_GLOBAL`` whose operands are not
literal strings are refused with :class:`PickleOpcodeError` naming the opcode (and the global).
What the rewritten stream may construct is decided by torch's unpickler alone.
"""
import pickle
import pickletools
import struct
from typing import List, Optional, Set, Tuple

__all__ = ["PickleOpcodeError", "to_weights_only_opcodes"]


class PickleOpcodeError(ValueError):
    """An opcode a data pickle has no use for (the message names it and, if any, its global)."""


_REFUSED = {
    "INST": "INST (builds an instance of a named class)",
    "OBJ": "OBJ (builds an instance of a class on the stack)",
    "NEWOBJ_EX": "NEWOBJ_EX (builds an instance with keyword arguments)",
    "EXT1": "EXT1 (a copyreg extension code)",
    "EXT2": "EXT2 (a copyreg extension code)",
    "EXT4": "EXT4 (a copyreg extension code)",
    "PERSID": "PERSID (a persistent id)",
    "BINPERSID": "BINPERSID (a persistent id)",
    "POP": "POP",
    "DUP": "DUP",
    "POP_MARK": "POP_MARK",
    "NEXT_BUFFER": "NEXT_BUFFER (an out-of-band buffer)",
    "READONLY_BUFFER": "READONLY_BUFFER (an out-of-band buffer)",
    "ADDITEMS": "ADDITEMS (a set)",
    "FROZENSET": "FROZENSET",
}
# consumed as they are by torch's unpickler
_PASS = {
    "APPEND", "APPENDS", "BINFLOAT", "BININT", "BININT1", "BININT2", "BUILD", "EMPTY_DICT",
    "EMPTY_LIST", "EMPTY_SET", "EMPTY_TUPLE", "LONG1", "NEWFALSE", "NEWOBJ", "NEWTRUE", "NONE",
    "REDUCE", "SETITEM", "SETITEMS", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
}
_MARK_CONSUMERS = {"APPENDS", "SETITEMS", "TUPLE"}
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_PY2_STRINGS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}
_BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _unicode(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogatepass")
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return pickle.BININT1 + bytes([v])
    if -(2**31) <= v < 2**31:
        return pickle.BININT + struct.pack("<i", v)
    raw = pickle.encode_long(v)
    if len(raw) > 255:
        raise PickleOpcodeError(f"an integer of {len(raw)} bytes")
    return pickle.LONG1 + bytes([len(raw)]) + raw


def _global(module: str, name: str, prefix: str = "") -> bytes:
    if "\n" in module or "\n" in name:
        raise PickleOpcodeError(f"a global whose name holds a line break ({module!r}, {name!r})")
    return pickle.GLOBAL + (prefix + module).encode("utf-8") + b"\n" + name.encode("utf-8") + b"\n"


def _bytes(b: bytes, prefix: str = "") -> bytes:
    """``_codecs.encode(b.decode('latin1'), 'latin1')``: how protocol 2 writes bytes."""
    return (_global("_codecs", "encode", prefix) + _unicode(b.decode("latin1")) + _unicode("latin1")
            + pickle.TUPLE2 + pickle.REDUCE)


class _Rewriter:
    """State of one rewrite: output chunks, which of them push a literal string, memo, marks."""

    def __init__(self, encoding: str, prefix: str):
        self.encoding, self.prefix = encoding, prefix
        self.out: List[bytes] = [pickle.PROTO + b"\x02"]
        self.literal: List[Optional[str]] = [None]  # per chunk: the string it pushes, if a literal
        self.memo: dict = {}  # index -> ("lit", str) or ("obj", None)
        self.marks: List[int] = []  # output positions of open MARKs
        self.globals: Set[str] = set()

    def emit(self, chunk: bytes, literal: Optional[str] = None):
        self.out.append(chunk)
        self.literal.append(literal)

    def string(self, s):
        self.emit(_unicode(s), s)

    def put(self, index: int):
        if self.literal[-1] is not None:  # a literal: GET re-emits it (so STACK_GLOBAL can consume it)
            self.memo[index] = ("lit", self.literal[-1])
        else:
            self.memo[index] = ("obj", None)
            self.emit(pickle.LONG_BINPUT + struct.pack("<I", index))

    def get(self, index: int):
        if index not in self.memo:
            raise PickleOpcodeError(f"a memo reference ({index}) to nothing")
        kind, value = self.memo[index]
        if kind == "lit":
            self.string(value)
        else:
            self.emit(pickle.LONG_BINGET + struct.pack("<I", index))

    def from_mark(self, empty: bytes, fill: bytes):
        """``MARK items LIST/DICT`` -> ``EMPTY_x MARK items APPENDS/SETITEMS``."""
        pos = self.marks.pop()
        if pos == len(self.out) - 1:
            self.out[pos], self.literal[pos] = empty, None
        else:
            self.out.insert(pos, empty)
            self.literal.insert(pos, None)
            self.emit(fill)

    def stack_global(self):
        module, name = (self.literal[-2], self.literal[-1]) if len(self.out) >= 3 else (None, None)
        if module is None or name is None:
            raise PickleOpcodeError("STACK_GLOBAL on values that are not literal strings")
        del self.out[-2:], self.literal[-2:]
        self.glob(module, name)

    def glob(self, module, name):
        self.globals.add(f"{module}.{name}")
        self.emit(_global(module, name, self.prefix))

    def py2_string(self, arg):
        data = arg if isinstance(arg, bytes) else arg.encode("latin1")
        if self.encoding == "bytes":
            self.emit(_bytes(data, self.prefix))
        else:
            self.string(data.decode(self.encoding))

    def op(self, name, arg):
        if name in _REFUSED:
            what = _REFUSED[name] + (f" of {arg.replace(' ', '.')}" if name == "INST" else "")
            raise PickleOpcodeError(f"opcode {what}")
        if name in _PASS:
            chunk = getattr(pickle, name)
            if name in ("BININT", "BININT1", "BININT2", "LONG1"):
                self.emit(_int(arg))
            elif name == "BINFLOAT":
                self.emit(pickle.BINFLOAT + struct.pack(">d", arg))
            else:
                self.emit(chunk)
            if name in _MARK_CONSUMERS:
                self.marks.pop()
        elif name in ("INT", "LONG", "LONG4"):
            self.emit(pickle.NEWTRUE if arg is True else pickle.NEWFALSE if arg is False else _int(arg))
        elif name == "FLOAT":
            self.emit(pickle.BINFLOAT + struct.pack(">d", arg))
        elif name in _STRINGS:
            self.string(arg)
        elif name in _PY2_STRINGS:
            self.py2_string(arg)
        elif name in _BYTES:
            self.emit(_bytes(arg, self.prefix))
        elif name == "BYTEARRAY8":
            self.emit(_global("builtins", "bytearray", self.prefix) + _bytes(bytes(arg), self.prefix)
                      + pickle.TUPLE1 + pickle.REDUCE)
        elif name == "MARK":
            self.marks.append(len(self.out))
            self.emit(pickle.MARK)
        elif name == "LIST":
            self.from_mark(pickle.EMPTY_LIST, pickle.APPENDS)
        elif name == "DICT":
            self.from_mark(pickle.EMPTY_DICT, pickle.SETITEMS)
        elif name in _GETS:
            self.get(int(arg))
        elif name in _PUTS:
            self.put(int(arg))
        elif name == "MEMOIZE":
            self.put(len(self.memo))
        elif name == "GLOBAL":
            self.glob(*arg.split(" ", 1))
        elif name == "STACK_GLOBAL":
            self.stack_global()
        elif name in ("PROTO", "FRAME"):
            pass
        elif name == "STOP":
            self.emit(pickle.STOP)
        else:
            raise PickleOpcodeError(f"opcode {name}")


def to_weights_only_opcodes(data: bytes, encoding: str = "latin1", module_prefix: str = "") -> Tuple[bytes, Set[str]]:
    """The pickle ``data`` (its first object) in the opcodes torch's weights-only unpickler reads,
    and the full names of the globals it refers to (as the file names them). Builds nothing.
    ``module_prefix`` is put before the module of every global written, the rewriter's own
    (``_codecs.encode``, ``builtins.bytearray``) included.

    Raises :class:`PickleOpcodeError` for opcodes a data file has no use for, ``ValueError``
    for a damaged or truncated pickle.
    """
    rw = _Rewriter(encoding, module_prefix)
    for opcode, arg, _pos in pickletools.genops(data):
        rw.op(opcode.name, arg)
        if opcode.name == "STOP":
            break
    return b"".join(rw.out), rw.globals
