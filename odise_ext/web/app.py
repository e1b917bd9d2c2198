"""The Gradio page of the web demo: one tab per loaded model, built by its task's demo entry
(``TaskDemo.web_tab``, registered in ``odise_ext.engine.demo.DEMO_REGISTRY`` by the task package);
with a :class:`~odise_ext.web.picker.ModelPicker`, one tab per task instead, each with a model
dropdown over the launch sessions and the zoo entries of that task.

Handlers turn :class:`~odise_ext.web.inputs.InputError` into ``gr.Error`` (a message in the page,
``handlers.guard``); the server keeps running whatever the input. Nothing is fetched from the
internet: analytics are off, the theme uses system fonts only, and no share link is made.
"""
from typing import Dict, List, Optional

import gradio as gr

from ..engine.demo import demo_class
from .picker import ModelPicker, about_markdown

__all__ = ["build_app", "local_theme", "picker_tab", "picker_body"]


def local_theme():
    """Gradio's default look with system fonts (the default theme loads Google fonts)."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


def build_app(sessions: List, tagger: str = "nltk", picker: Optional[ModelPicker] = None) -> gr.Blocks:
    """The page for loaded sessions (one tab each; two sessions of one task get numbered ids), or,
    with ``picker``, one tab per task of ``picker.tasks()`` (``sessions`` are then ignored: give
    them to ``picker.add``)."""
    with gr.Blocks(title="odise-ext web demo", analytics_enabled=False) as app:
        gr.Markdown("# odise-ext web demo")
        used: Dict[str, int] = {}
        with gr.Tabs():
            if picker is not None:
                for task in picker.tasks():
                    picker_tab(picker, task, tagger)
                return app
            for session in sessions:
                demo = session.demo
                prefix = demo.web_prefix
                used[prefix] = used.get(prefix, 0) + 1
                p = prefix if used[prefix] == 1 else f"{prefix}{used[prefix]}"
                with gr.Tab(demo.web_title, elem_id=f"{p}-tab"):
                    gr.Markdown(about_markdown(session), elem_id=f"{p}-about")
                    demo.web_tab(session, p, tagger)
    return app


def picker_tab(picker: ModelPicker, task: str, tagger: str) -> None:
    """The tab of ``task`` (a META_ARCHITECTURE): the model dropdown, the note above the model
    (config and weights, or why a choice failed) and the task's components for the chosen model,
    rendered again whenever another model is chosen."""
    demo = demo_class(task)
    p = demo.web_prefix
    choices = picker.choices(task)
    first = next((key for _, key in choices if picker.session(key) is not None), None)
    with gr.Tab(demo.web_title, elem_id=f"{p}-tab"):
        model = gr.Dropdown(choices, value=first, label="Model (zoo entries are fetched and converted on first use)",
                            elem_id=f"{p}-model")
        note = gr.Markdown(about_markdown(picker.session(first)) if first else "Choose a model above.",
                           elem_id=f"{p}-about")
        current = gr.State(first)

        def choose(key, shown, progress=gr.Progress(track_tqdm=True)):
            key_now, text = picker.select(key, shown, progress)
            # a failed choice puts the dropdown back on the model still shown
            return key_now, text, gr.update(value=key_now, choices=picker.choices(task))

        # .input: user choices only (putting the value back does not fire it again)
        model.input(choose, [model, current], [current, note, model], show_progress="full")

        @gr.render(inputs=[current])
        def body(key):
            picker_body(picker, task, key, tagger)


def picker_body(picker: ModelPicker, task: str, key: Optional[str], tagger: str) -> None:
    """The task's components for the session of ``key`` (a line when none is loaded)."""
    session = picker.session(key)
    if session is None:
        gr.Markdown("No model is loaded in this tab yet.")
        return
    session.demo.web_tab(session, session.demo.web_prefix, tagger)
