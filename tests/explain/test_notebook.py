"""docs/notebooks/backprop-step-by-step.ipynb runs from top to bottom (nbclient): any cell error fails.

Its cells assert the published numbers and the layer rule themselves. Skipped with the reason when
nbclient, nbformat or a Python kernel (ipykernel) is missing, except under CI=true, where it fails."""
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "backprop-step-by-step.ipynb"


def _unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"the notebook test cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def test_step_by_step_notebook_executes():
    try:
        import nbclient
        import nbformat
    except ImportError as exc:
        _unavailable(f"nbclient/nbformat not installed ({exc}); pip install -e '.[test]'")
    try:
        import ipykernel  # noqa: F401
    except ImportError as exc:
        _unavailable(f"ipykernel not installed ({exc}); pip install -e '.[test]'")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 8
    src = "\n".join(c.source for c in code)
    for used in ("mazur_model", "dp.explain.trace", "dp.explain.chain", "exp(dp.sin(x ** 2))", "dp.explain.modes",
                 "diagnosis", "Report.from_run", "dp.jvp", "dp.vjp"):
        assert used in src, used
    # the kernel inherits this process's environment (PYTHONPATH included), so it imports the same deltaprop
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()   # raises CellExecutionError naming the cell on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o for o in outputs if o.output_type == "execute_result" and "text/html" in o.get("data", {})]
    assert any("deltaprop-trace" in o["data"]["text/html"] for o in html)      # the trace displays as tables
    assert any("<iframe srcdoc=" in o["data"]["text/html"] for o in html)      # the report inline
    assert any("deltaprop-modes" in o["data"]["text/html"] for o in html)


def test_docs_nav_names_the_step_by_step_pages_once_and_the_notebook_tables_fit():
    # mkdocs-jupyter titles a notebook by its first heading unless told not to: the nav then showed
    # "Backpropagation step by step" twice (the page, and the notebook's "# Backpropagation, step by step")
    import yaml

    root = NOTEBOOK.parents[2]

    class Loader(yaml.SafeLoader):   # mkdocs.yml may hold !!python tags: read them as plain nodes
        pass
    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    cfg = yaml.load((root / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    jupyter = next(p["mkdocs-jupyter"] for p in cfg["plugins"] if isinstance(p, dict) and "mkdocs-jupyter" in p)
    assert jupyter["ignore_h1_titles"] is True
    titles = [next(iter(item)) for item in cfg["nav"] if isinstance(item, dict)]
    assert titles.count("Backpropagation step by step") == 1
    assert "Notebook: the three questions" in titles
    # the wide explain tables: compact, heads allowed to wrap (the theme's 5rem per head made a
    # 572 px scroll box), and the notebook page has no table of contents beside them
    assert "stylesheets/notebook.css" in cfg["extra_css"]
    css = (root / "docs" / "stylesheets" / "notebook.css").read_text(encoding="utf-8")
    assert "min-width: 0" in css and ".deltaprop-trace" in css and ".deltaprop-modes" in css
    assert '"toc"' in (root / "docs" / "_ext" / "hooks.py").read_text(encoding="utf-8")
