"""See the errors propagate: deltas per layer, the chain rule with numbers, graph drawings.

trace(model, x, target, loss, lr)  per-layer net/out/delta and per-parameter gradients, the layer rule
mazur_model()                      Matt Mazur's 2-2-2 example network (data: dp.data.mazur())
chain(y, x)                        dy/dx as the sum over paths of products of local derivatives;
                                   .forward(): forward mode step by step, tangents from dx/dx = 1
graph(y)                           the recorded graph as Graphviz DOT (and SVG with `dot`)
modes()                            forward vs reverse mode: passes, agreement and time
names                              one naming of layers and neurons: i1 -> h1 (h1.1 ...) -> o1, 1-based
lessons                            what a run teaches: training_lesson(losses, ...), depth_lesson(...)
report_data(...) / write_report    the data and the self-contained HTML training report
Report.from_run(...)               the report as an object a notebook shows inline
"""
from __future__ import annotations

from typing import Any

from .chain import Chain, chain
from .graph import Graph, graph
from .mazur import mazur_model
from .modes import ModeRow, ModeTable, modes
from .trace import Layer, Trace, trace

__all__ = ["trace", "Trace", "Layer", "chain", "Chain", "graph", "Graph", "modes", "ModeRow", "ModeTable", "report_data",
           "write_report", "render_report", "mazur_model", "Report"]

# the functions share their modules' names: bind them here so `dp.explain.trace` is the function
_LAZY = {"report_data": ".record", "write_report": ".report", "render_report": ".report", "Report": ".report"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'deltaprop.explain' has no attribute {name!r}")
