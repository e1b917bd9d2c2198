"""Plain pickles that declare more memory than their file holds data for are refused, naming the
file, before anything that size is allocated. Each crafted pickle is written opcode by opcode
(the sizes are the attack: a terabyte from a few bytes, or one memoised buffer copied many times).
Unbounded, the first ones raise MemoryError (or crash numpy) and the copy cases allocate 64 MiB."""
import os
import pickle
import struct

import numpy as np
import pytest

from odise_ext.utils.safe_load import MAX_EXPANSION_ENV, UnsafeFileError, safe_pickle_load

TIB = 2**40
MIB = 1 << 20


def _str(s: str) -> bytes:
    raw = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def _bytes(b: bytes) -> bytes:
    return pickle.BINBYTES + struct.pack("<I", len(b)) + b


def _int(v: int) -> bytes:
    raw = pickle.encode_long(v)
    return pickle.LONG1 + bytes([len(raw)]) + raw


def _glob(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _call(func: bytes, *args: bytes) -> bytes:
    return func + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def _dtype(code: str) -> bytes:
    return _call(_glob("numpy", "dtype"), _str(code), pickle.NEWFALSE, pickle.NEWTRUE)


def _empty_array() -> bytes:
    """numpy's own first step: _reconstruct(ndarray, (0,), b'b')."""
    return _call(_glob("numpy.core.multiarray", "_reconstruct"), _glob("numpy", "ndarray"),
                 _int(0) + pickle.TUPLE1, pickle.SHORT_BINBYTES + b"\x01b")


def _state(shape: int, dtype: bytes, raw: bytes) -> bytes:
    return (pickle.MARK + _int(1) + _int(shape) + pickle.TUPLE1 + dtype + pickle.NEWFALSE + raw
            + pickle.TUPLE + pickle.BUILD)


def _file(tmp_path, name: str, body: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(pickle.PROTO + b"\x02" + body + pickle.STOP)
    return str(path)


def _copies(body_of_one: bytes, n: int) -> bytes:
    """A list of a memoised 1 MiB buffer (memo entry 0) and ``n`` results of ``body_of_one``."""
    return pickle.EMPTY_LIST + pickle.MARK + ONE_MIB + body_of_one * n + pickle.APPENDS


ONE_MIB = _bytes(b"\x00" * MIB) + pickle.BINPUT + b"\x00"
CRAFTED = {
    # _reconstruct(ndarray, (2**40,), b'b'): numpy would allocate the shape it is given
    "reconstruct": _call(_glob("numpy.core.multiarray", "_reconstruct"), _glob("numpy", "ndarray"),
                         _int(TIB) + pickle.TUPLE1, pickle.SHORT_BINBYTES + b"\x01b"),
    "reconstruct numpy 2": _call(_glob("numpy._core.multiarray", "_reconstruct"), _glob("numpy", "ndarray"),
                                 _int(TIB) + pickle.TUPLE1, pickle.SHORT_BINBYTES + b"\x01b"),
    # np.ndarray((2**40,)) through REDUCE and through NEWOBJ: np.empty by another name
    "ndarray REDUCE": _call(_glob("numpy", "ndarray"), _int(TIB) + pickle.TUPLE1, _str("b")),
    "ndarray NEWOBJ": (_glob("numpy", "ndarray") + pickle.MARK + _int(TIB) + pickle.TUPLE1 + _str("b")
                       + pickle.TUPLE + pickle.NEWOBJ),
    # __setstate__ of an object array: numpy allocates the declared shape before reading the list
    "object array state": _empty_array() + _state(2**37, _dtype("O"), pickle.EMPTY_LIST + _int(1) + pickle.APPEND),
    # an object array of 4 items whose data lists 1: numpy reads past the list (it crashed here)
    "object array short list": _empty_array() + _state(4, _dtype("O"), pickle.EMPTY_LIST + _int(1) + pickle.APPEND),
    # a float32 array declaring 2**40 elements over 4 bytes of data
    "array state": _empty_array() + _state(TIB, _dtype("f4"), _bytes(b"1234")),
    # np.dtype('V2**40') then _frombuffer / scalar over a short buffer
    "frombuffer": _call(_glob("numpy.core.numeric", "_frombuffer"), _bytes(b"12345678"), _dtype("f8"),
                        _int(TIB) + pickle.TUPLE1, _str("C")),
    # bytearray(2**40): a terabyte of zeros
    "bytearray(n)": _call(_glob("builtins", "bytearray"), _int(TIB)),
}
COPIED = {
    # one memoised 1 MiB buffer, then 64 big-endian float32 arrays over it: numpy byte-swaps a copy each
    "byte-swapped arrays": _copies(
        _empty_array() + _state(MIB // 4, _call(_glob("numpy", "dtype"), _str(">f4"), pickle.NEWFALSE, pickle.NEWTRUE),
                                pickle.BINGET + b"\x00"), 64),
    "bytearray copies": _copies(_call(_glob("builtins", "bytearray"), pickle.BINGET + b"\x00"), 64),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_declared_size_beyond_the_file_is_refused(tmp_path, name):
    path = _file(tmp_path, "crafted.pkl", CRAFTED[name])
    with pytest.raises(ValueError) as e:
        safe_pickle_load(path)
    assert not isinstance(e.value, (MemoryError, UnsafeFileError)), name
    msg = str(e.value)
    assert "crafted.pkl" in msg and MAX_EXPANSION_ENV in msg and "declares" in msg, msg


@pytest.mark.parametrize("name", sorted(COPIED))
def test_one_buffer_copied_many_times_is_refused(tmp_path, name):
    path = _file(tmp_path, "copies.pkl", COPIED[name])
    assert os.path.getsize(path) < 2 * MIB  # 64 MiB if read unbounded
    with pytest.raises(ValueError, match=r"copies\.pkl.*declares"):
        safe_pickle_load(path)


def test_raised_factor_reads_the_copies(tmp_path, monkeypatch):
    """The refusal is a budget, not a ban: the documented factor lets a trusted file through."""
    path = _file(tmp_path, "copies.pkl", COPIED["bytearray copies"])
    monkeypatch.setenv(MAX_EXPANSION_ENV, "100")
    out = safe_pickle_load(path)
    assert len(out) == 65 and all(type(b) is bytearray and b == b"\x00" * MIB for b in out[1:])


def test_torch_constructors_refused_in_a_plain_pickle(tmp_path):
    """torch.FloatStorage(2**40) is in torch's own allow-list, never in a plain data pickle's."""
    path = _file(tmp_path, "storage.pkl", _call(_glob("torch", "FloatStorage"), _int(TIB)))
    with pytest.raises(UnsafeFileError, match=r"storage\.pkl.*torch\.FloatStorage"):
        safe_pickle_load(path)


def test_arrays_read_back_as_plain_ndarrays_with_shared_references(tmp_path):
    """A real array pickle reads within the budget; its arrays are numpy.ndarray (not the bounded
    subclass), in lists and tuples too, and a memoised array stays one object."""
    big = np.arange(MIB // 8, dtype=np.float64)
    good = {"big": big, "again": big, "swapped": big.astype(">f8"), "l": [np.ones(3, np.int16)], "t": (big, 1)}
    for protocol in (2, 4, 5):
        path = tmp_path / f"good{protocol}.pkl"
        path.write_bytes(pickle.dumps(good, protocol=protocol))
        back, oracle = safe_pickle_load(str(path)), pickle.loads(path.read_bytes())
        assert type(back["big"]) is np.ndarray and np.array_equal(back["big"], np.arange(MIB // 8, dtype=np.float64))
        assert back["again"] is back["big"] and back["t"][0] is back["big"], protocol
        assert back["swapped"].dtype == oracle["swapped"].dtype and np.array_equal(back["swapped"], big)
        assert type(back["l"][0]) is np.ndarray and back["l"][0].tolist() == [1, 1, 1], protocol


def test_checkpointers_refuse_a_huge_array_pkl(tmp_path):
    """MODEL.WEIGHTS .pkl (training init, --eval-only) and the predictors' checkpointer read plain
    pickles through the same bounded reader."""
    import torch

    from odise_ext.engine import AtomicCheckpointer, SafeCheckpointer

    body = pickle.EMPTY_DICT + _str("model") + CRAFTED["reconstruct"] + pickle.SETITEM
    path = _file(tmp_path, "model_final.pkl", body)
    for checkpointer in (AtomicCheckpointer, SafeCheckpointer):
        with pytest.raises(ValueError, match=r"model_final\.pkl.*declares"):
            checkpointer(torch.nn.Linear(2, 2)).load(path)
