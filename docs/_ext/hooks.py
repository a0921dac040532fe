"""mkdocs hooks (mkdocs.yml: hooks): the step-by-step notebook joins the site when it exists.

docs/notebooks/backprop-step-by-step.ipynb is stored without outputs; mkdocs-jupyter executes it
at build time and renders it (an error in a cell fails the build). A nav entry or a link to a
missing file would fail the strict build too, so both are added here, only when it is there.
"""
from __future__ import annotations

from pathlib import Path

NOTEBOOK = "notebooks/backprop-step-by-step.ipynb"
TITLE = "Backpropagation step by step"


def on_config(config):
    """Make the step-by-step nav entry a section: the page, then the notebook."""
    if not (Path(config["docs_dir"]) / NOTEBOOK).is_file() or NOTEBOOK in repr(config["nav"]):
        return config  # (no notebook, or mkdocs.yml lists it already)
    for i, item in enumerate(config["nav"] or []):
        if isinstance(item, dict) and isinstance(item.get(TITLE), str):
            config["nav"][i] = {TITLE: [item[TITLE], {"The notebook": NOTEBOOK}]}
    return config


def on_page_context(context, page, config, nav):
    """The notebook page shows no table of contents: its wide tables get the column's width."""
    if page.file.src_uri == NOTEBOOK:
        page.meta = dict(page.meta or {})
        page.meta["hide"] = sorted(set(page.meta.get("hide", [])) | {"toc"})
    return context


def on_page_markdown(markdown, page, config, files):
    """Point the step-by-step page at the notebook."""
    if page.file.src_uri == "step-by-step.md" and files.get_file_from_path(NOTEBOOK) is not None:
        markdown += ("\n## The notebook\n\nThe same questions, answered with the tools in a notebook you can run: "
                     f"[backprop-step-by-step.ipynb]({NOTEBOOK}) (Mazur's example, the layer rule on a "
                     "4-hidden-layer net, exp(sin(x^2)) by the chain rule, forward against reverse mode, "
                     "vanishing gradients).\n")
    return markdown
