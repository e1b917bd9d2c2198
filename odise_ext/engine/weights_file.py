"""A cheap look at a weights file before anything is built from it.

``MODEL.WEIGHTS`` pointing at a missing, empty, truncated or non-checkpoint file otherwise ends
in an error from deep inside ``torch.load`` / ``zipfile`` that names no file (after the model
was built, which takes minutes for full-size models). :func:`check_weights_file` reads only the
file's first bytes and, for zip and safetensors files, its index, and names the problem.
How the file is then read (without executing code) is the checkpointer's business.
"""
import json
import os
import struct
import zipfile

__all__ = ["check_weights_file"]

_PICKLE_PROTOCOL_2_PLUS = b"\x80"
# first bytes of files often given by mistake -> what they are
_OTHER_FORMATS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive (unpack it first)",
    b"\x89HDF": "an HDF5 file (Keras / h5py weights: convert them to a PyTorch state dict)",
}


def _safetensors_problem(path, size):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n == 0 or 8 + n > size:
            return None if n == 0 else f"its safetensors header claims {n} bytes, the file has {size}: truncated"
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "its safetensors header is not JSON"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if ends and 8 + n + max(ends) > size:
        return f"its tensors need {8 + n + max(ends)} bytes, the file has {size}: truncated"
    return ""


def check_weights_file(path: str, key: str = "MODEL.WEIGHTS") -> None:
    """Raise ``FileNotFoundError`` / ``ValueError`` naming ``path`` (set by config ``key``) when
    it cannot be a checkpoint: missing, a directory, empty, truncated, or another kind of file.

    Accepted: zip-format ``torch.save`` files (``.pth`` / ``.pt``), legacy ``torch.save`` and
    detectron2 ``.pkl`` pickles (by their pickle header), and safetensors. URLs and detectron2
    model-zoo names (``scheme://...``) are left to the checkpointer. An empty ``path`` means no
    weights and is accepted.
    """
    if not path or "://" in path:
        return
    if os.path.isdir(path):
        raise IsADirectoryError(f"{key}={path} is a directory, not a weights file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{key}={path} does not exist")
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{key}={path} is empty (0 bytes): an interrupted download or copy?")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as z:
                z.namelist()  # reads the central directory, at the end of the file
        except (zipfile.BadZipFile, OSError) as e:
            raise ValueError(f"{key}={path} is a damaged or truncated torch checkpoint ({size} bytes): {e}") from None
        return
    if path.endswith(".pkl") and head[:1] in (b"(", b"c", b"}", b"]"):
        return  # a protocol 0/1 pickle (old detectron2 / Detectron model-zoo files)
    if head.startswith(_PICKLE_PROTOCOL_2_PLUS):
        if size < 16:
            raise ValueError(f"{key}={path} is truncated: {size} bytes of a pickle")
        return
    if size >= 9 and head[8:9] == b"{":
        problem = _safetensors_problem(path, size)
        if problem is None:
            raise ValueError(f"{key}={path} has an empty safetensors header")
        if problem:
            raise ValueError(f"{key}={path}: {problem}")
        return
    for magic, what in _OTHER_FORMATS.items():
        if head.startswith(magic):
            raise ValueError(f"{key}={path} is {what}, not a weights file")
    text = head.lstrip()[:1]
    kind = "text (JSON / YAML?)" if text in (b"{", b"[", b"#") or head.isascii() else "of an unknown format"
    raise ValueError(
        f"{key}={path} is not a checkpoint: {kind}, first bytes {head[:8]!r}; expected a torch.save file "
        "(.pth), a detectron2 .pkl or a .safetensors file"
    )
