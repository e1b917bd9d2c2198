"""``metrics.json`` appended whole lines at a time, even on a full disk.

detectron2's ``JSONWriter`` appends one JSON line per logged iteration. A failed append (full
disk) would leave a partial line that breaks every later reader of the file; here each append is
one write, and a failure truncates the file back to its previous end and raises naming the path.
"""
import json
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
