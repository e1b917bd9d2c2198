"""HTML snippets of the web demo's results (every user-given text is escaped)."""
from html import escape
from typing import Sequence, Tuple

__all__ = ["legend_html", "caption_html"]

RGB = Tuple[int, int, int]


def _hex(color: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def legend_html(entries: Sequence[Tuple[str, RGB]]) -> str:
    """One swatch + name per (class, colour); a sentence when nothing was found."""
    if not entries:
        return "<p class='legend-empty'>No segment found.</p>"
    items = "".join(
        f"<li style='list-style:none;margin:2px 0'><span style='display:inline-block;width:14px;height:14px;"
        f"margin-right:6px;vertical-align:middle;border:1px solid #555;background:{_hex(c)}'></span>"
        f"<span class='legend-class'>{escape(name)}</span></li>"
        for name, c in entries
    )
    return f"<ul class='legend' style='padding-left:0'>{items}</ul>"


def caption_html(narrative: str, spans: Sequence[Tuple[int, int]], colors: Sequence[RGB]) -> str:
    """The narrative with phrase i (character span ``spans[i]``) in bold ``colors[i]``."""
    parts, cursor = [], 0
    for (start, end), color in zip(spans, colors):
        parts.append(escape(narrative[cursor:start]))
        parts.append(f"<b class='phrase' style='color:{_hex(color)}'>{escape(narrative[start:end])}</b>")
        cursor = end
    parts.append(escape(narrative[cursor:]))
    return f"<p class='caption' style='font-size:1.1em'>{''.join(parts)}</p>"
