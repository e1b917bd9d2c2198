"""The web demo's model picker: per task tab, a choice among the sessions loaded at launch and the
model-zoo entries (``odise_ext.zoo.catalog()``) whose config's ``MODEL.META_ARCHITECTURE`` is that
tab's task. Choosing an entry loads it (zoo name -> downloaded, verified, converted checkpoint ->
its config -> a :class:`DemoSession`); loaded sessions are cached per entry, so switching back is
instant. An entry that cannot be loaded (offline with nothing cached, a checksum mismatch, ...)
gives the zoo's message for the page, never a traceback.

Plain Python (no Gradio import): ``odise_ext.web.app`` wires it to the page.
"""
import logging
import os
import threading
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .session import DemoSession

__all__ = ["ModelPicker", "PickerError", "about_markdown", "REPO_ROOT"]

logger = logging.getLogger(__name__)

# Zoo entries name their config relative to the repository root.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

Progress = Callable[..., None]  # gr.Progress or any callable(fraction, desc=...)


class PickerError(RuntimeError):
    """A picker choice that cannot be loaded; the message is for the page."""


def about_markdown(session: DemoSession) -> str:
    """The line above a tab: config, where the weights come from, the test-time resize."""
    return (f"Config `{session.config_file}`. {session.weights_note} "
            f"Test-time resize: {session.resize_note}.")


def _error_markdown(key: str, message: str) -> str:
    """The zoo's message in the page: its first line, then any manual steps verbatim."""
    first, _, rest = message.strip().partition("\n")
    text = f"**Cannot load `{key}`**: {first}"
    return text + (f"\n\n```\n{rest.strip()}\n```" if rest.strip() else "")


class ModelPicker:
    """
    Args:
        opts: config overrides applied to every entry's config (``tools/web_demo.py --opts``).
        max_loaded: zoo sessions kept loaded at once; choosing one more unloads the least
            recently chosen (sessions given at launch are always kept). ``None``: no limit.
        root: the directory the entries' config paths are relative to.
        builder: ``(config_file, opts) -> DemoSession`` (default: :func:`odise_ext.web.build.build_session`).
    """

    def __init__(self, opts: Sequence[str] = (), *, max_loaded: Optional[int] = 2, root: str = REPO_ROOT,
                 builder: Optional[Callable[..., DemoSession]] = None):
        from ..config import setup_cfg
        from ..zoo import catalog
        from .build import web_tasks

        if max_loaded is not None and max_loaded < 1:
            raise ValueError(f"max_loaded must be at least 1 (or None), got {max_loaded}")
        self.opts, self.max_loaded, self.root = list(opts), max_loaded, root
        self._builder = builder
        self._launch: Dict[str, DemoSession] = {}  # label -> session given at launch
        self._loaded: "OrderedDict[str, DemoSession]" = OrderedDict()  # zoo uri -> session, LRU order
        self._lock = threading.Lock()  # one load at a time (each builds a model)
        self.entry_tasks: Dict[str, str] = {}  # zoo uri -> META_ARCHITECTURE of its config (one with a tab)
        tabs = web_tasks()
        for uri, entry in sorted(catalog().items()):
            path = os.path.join(root, entry.config)
            try:
                arch = setup_cfg(path).MODEL.META_ARCHITECTURE
            except Exception as e:  # a mirror's entry naming a config that is absent here: not offered
                logger.warning("model picker: %s is not offered (its config %s: %s)", uri, path, e)
                continue
            if arch in tabs:
                self.entry_tasks[uri] = arch

    def add(self, key: str, session: DemoSession) -> None:
        """A session built at launch (``--config-file`` / ``--model``), offered under ``key``."""
        self._launch[key] = session

    def tasks(self) -> List[str]:
        """Every META_ARCHITECTURE with a choice, launch sessions' tasks first (in their order)."""
        seen = [s.task for s in self._launch.values()] + list(self.entry_tasks.values())
        return list(dict.fromkeys(seen))

    def choices(self, task: str) -> List[Tuple[str, str]]:
        """(label, key) of every choice for a tab of ``task``: launch sessions, then zoo entries
        (marked "loaded" while cached in this process)."""
        out = [(key, key) for key, s in self._launch.items() if s.task == task]
        for uri, arch in self.entry_tasks.items():
            if arch == task and uri not in self._launch:
                out.append((uri + (" (loaded)" if uri in self._loaded else ""), uri))
        return out

    def session(self, key: Optional[str]) -> Optional[DemoSession]:
        """The loaded session of ``key`` (None if it is not loaded)."""
        if not key:
            return None
        return self._launch.get(key) or self._loaded.get(key)

    def load(self, key: str, progress: Progress) -> DemoSession:
        """The session of ``key``, loading a zoo entry on first use (download progress goes
        through ``progress``). Raises :class:`PickerError` with the message for the page."""
        from ..zoo import ZooError, get_entry, resolve

        cached = self.session(key)
        if cached is not None:
            try:
                self._loaded.move_to_end(key)  # recently chosen: unloaded last
            except KeyError:  # a launch session, or unloaded by a load meanwhile (this request keeps it)
                pass
            return cached
        if key not in self.entry_tasks:
            raise PickerError(f"'{key}' is not a choice here (zoo entries: {', '.join(self.entry_tasks)})")
        with self._lock:
            if key in self._loaded:  # loaded by another request while this one waited
                return self._loaded[key]
            try:
                progress(0.0, desc=f"fetching {key}")
                entry = get_entry(key)
                resolve(key)  # download + verify + convert, or the cached converted file
                progress(0.7, desc=f"building the model of {key}")
                session = self._build(os.path.join(self.root, entry.config), ["MODEL.WEIGHTS", entry.uri, *self.opts])
            except ZooError as e:
                raise PickerError(str(e)) from None
            except (KeyError, ValueError) as e:  # an unknown entry, a config value that fails its check
                raise PickerError(str(e).strip("'\"")) from None
            except Exception as e:
                logger.exception("model picker: loading %s failed", key)
                raise PickerError(f"building the model failed ({type(e).__name__}: {e})") from None
            self._loaded[key] = session
            while self.max_loaded is not None and len(self._loaded) > self.max_loaded:
                dropped, _ = self._loaded.popitem(last=False)
                logger.info("model picker: unloaded %s (max_loaded=%d)", dropped, self.max_loaded)
            progress(1.0, desc=f"{key} loaded")
            return session

    def _build(self, config_file: str, opts: List[str]) -> DemoSession:
        if self._builder is None:
            from .build import build_session

            return build_session(config_file, opts)
        return self._builder(config_file, opts)

    def select(self, key: Optional[str], current: Optional[str], progress: Progress) -> Tuple[Optional[str], str]:
        """A tab's picker event: -> (the key the tab shows now, the markdown above it). A choice
        that cannot be loaded keeps ``current`` and says why."""
        if not key:
            return current, "Choose a model above."
        try:
            session = self.load(key, progress)
        except PickerError as e:
            note = _error_markdown(key, str(e))
            if current and self.session(current) is not None:
                note += f"\n\nStill showing `{current}`."
            return current, note
        return key, about_markdown(session)
