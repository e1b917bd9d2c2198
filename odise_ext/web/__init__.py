"""A Gradio web demo of every task (``tools/web_demo.py``).

Everything but :mod:`.app` is plain Python (no Gradio import), so the input handling and the
task runs are tested without a browser.
"""
from .inputs import InputError, load_image

__all__ = ["web_tasks", "build_session", "InputError", "load_image", "build_app", "local_theme", "ModelPicker"]


def __getattr__(name):
    # Gradio's import costs seconds: only the page itself needs it. The session builder imports
    # every task (through odise_ext): task modules may import web's plain helpers meanwhile.
    if name in ("build_app", "local_theme"):
        from . import app

        return getattr(app, name)
    if name == "ModelPicker":
        from .picker import ModelPicker

        return ModelPicker
    if name in ("web_tasks", "build_session"):
        from . import build

        return getattr(build, name)
    raise AttributeError(name)
