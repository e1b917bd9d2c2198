"""``metrics.json`` appended whole lines at a time, even on a full disk, and consistent with the
checkpoint a run resumes from.

detectron2's ``JSONWriter`` appends one JSON line per logged iteration. A failed append (full
disk) would leave a partial line that breaks every later reader of the file; here each append is
one write, and a failure truncates the file back to its previous end and raises naming the path.

``state_dict()`` (saved in every checkpoint) is the file's length and the last iteration
written; ``load_state_dict`` (on resume) cuts off the lines written after that checkpoint (the
resumed run writes them again) and skips what was already written, so each line of an
uninterrupted run is in the file exactly once, whenever the run was killed.
"""
import json
import logging
import os
from collections import defaultdict

from detectron2.utils.events import JSONWriter, get_event_storage

__all__ = ["AtomicJSONWriter"]


class AtomicJSONWriter(JSONWriter):
    def __init__(self, json_file, window_size=20):
        super().__init__(json_file, window_size)
        self._file_handle.close()
        self._path = json_file
        # unbuffered: a failed write leaves nothing pending to be flushed later
        self._file_handle = open(json_file, "ab", buffering=0)

    def write(self):
        storage = get_event_storage()
        to_save = defaultdict(dict)
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                to_save[itr][k] = v
        if not to_save:
            return
        text = "".join(json.dumps({**to_save[i], "iteration": i}, sort_keys=True) + "\n" for i in sorted(to_save))
        fd = self._file_handle.fileno()
        end = os.lseek(fd, 0, os.SEEK_END)
        data = memoryview(text.encode())
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, end)
            except OSError:
                pass
            raise type(e)(e.errno, f"could not append to {self._path}: {e.strerror or e}", self._path) from e
        self._last_write = max(to_save)

    def state_dict(self) -> dict:
        """{"size": bytes in the file, "last_write": last iteration written}."""
        return {"size": os.fstat(self._file_handle.fileno()).st_size, "last_write": int(self._last_write)}

    def load_state_dict(self, state: dict) -> None:
        """Back to the state of a checkpoint: lines appended after it are removed."""
        fd = self._file_handle.fileno()
        size = os.fstat(fd).st_size
        if size > state["size"]:
            os.ftruncate(fd, state["size"])
            logging.getLogger(__name__).info(
                f"{self._path}: removed {size - state['size']} bytes written after the checkpoint (written again)")
        elif size < state["size"]:
            logging.getLogger(__name__).warning(
                f"{self._path} is shorter than when the checkpoint was saved: lines logged before it are missing")
        self._last_write = state["last_write"]
