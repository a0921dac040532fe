"""Rich display in notebooks: text explanations shown as preformatted blocks, never escaped strings."""
from __future__ import annotations

import html

__all__ = ["Text", "pre_html"]


def pre_html(text: str, cls: str = "deltaprop-text") -> str:
    """text as an escaped <pre> block (what Jupyter shows for the explain objects)."""
    return f'<pre class="{cls}" style="line-height:1.35">{html.escape(text)}</pre>'


class Text(str):
    """A str that a notebook shows as a text block (not as a quoted, escaped string)."""

    def _repr_html_(self) -> str:
        return pre_html(str(self))

    def _repr_markdown_(self) -> str:
        return "```text\n" + str(self) + "\n```\n"

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's plain-text repr: the text itself
        p.text(str(self))
