"""The Gradio page of the web demo: one tab per loaded model, built by its task's demo entry
(``TaskDemo.web_tab``, registered in ``odise_ext.engine.demo.DEMO_REGISTRY`` by the task package).

Handlers turn :class:`~odise_ext.web.inputs.InputError` into ``gr.Error`` (a message in the page,
``handlers.guard``); the server keeps running whatever the input. Nothing is fetched from the
internet: analytics are off, the theme uses system fonts only, and no share link is made.
"""
from typing import Dict, List

import gradio as gr

__all__ = ["build_app", "local_theme"]


def local_theme():
    """Gradio's default look with system fonts (the default theme loads Google fonts)."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


def build_app(sessions: List, tagger: str = "nltk") -> gr.Blocks:
    """The page for loaded sessions (one tab each; two sessions of one task get numbered ids)."""
    with gr.Blocks(title="odise-ext web demo", analytics_enabled=False) as app:
        gr.Markdown("# odise-ext web demo")
        used: Dict[str, int] = {}
        with gr.Tabs():
            for session in sessions:
                demo = session.demo
                prefix = demo.web_prefix
                used[prefix] = used.get(prefix, 0) + 1
                p = prefix if used[prefix] == 1 else f"{prefix}{used[prefix]}"
                with gr.Tab(demo.web_title, elem_id=f"{p}-tab"):
                    gr.Markdown(f"Config `{session.config_file}`. {session.weights_note} "
                                f"Test-time resize: {session.resize_note}.", elem_id=f"{p}-about")
                    demo.web_tab(session, p, tagger)
    return app
