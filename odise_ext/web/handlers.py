"""What every tab's request handlers share: page errors for bad input, the uploaded image fitted
to the session, and the status text. Plain Python: Gradio is imported only when an error is
raised."""
import functools
import logging
from typing import Callable, Sequence

from .inputs import InputError, load_image

__all__ = ["guard", "session_image", "status"]

logger = logging.getLogger(__name__)


def guard(fn: Callable) -> Callable:
    """Bad input -> ``gr.Error`` with its message; any other failure -> ``gr.Error`` naming it (the
    traceback goes to the server's log, not the page)."""

    def wrapped(*args, **kwargs):
        import gradio as gr

        try:
            return fn(*args, **kwargs)
        except InputError as e:
            raise gr.Error(str(e), print_exception=False)
        except gr.Error:
            raise
        except Exception as e:
            logger.exception("web demo request failed")
            raise gr.Error(f"The model failed on this input ({type(e).__name__}: {e}).", print_exception=False)

    return functools.wraps(fn)(wrapped)


def session_image(session, path, progress):
    """-> ((h, w) of the upload, uint8 RGB image fitted to ``session``, notes for the page)."""
    progress(0.05, desc="reading the image")
    rgb = load_image(path, max_pixels=session.cfg.DATA.MAX_INPUT_PIXELS)
    small, notes = session.fit(rgb)
    return rgb.shape[:2], small, notes


def status(notes: Sequence[str]) -> str:
    return "\n\n".join(n for n in notes if n)
