"""One naming of layers and neurons for every view: trace, report page, CLI and playground.

Layers are counted the way the textbooks count them: the inputs, hidden layers 1..L, then
the output layer. Neurons are numbered from 1 within their layer, as in Matt Mazur's post
(i1, i2 -> h1, h2 -> o1, o2):

    inputs            i1, i2, ...
    hidden layers     h1, h2, ...          when the network has one hidden layer
                      h1.1, h1.2, h2.1 ... when it has several (h<layer>.<neuron>)
    outputs           o1, o2, ...

A weight is named by the link it sits on, w(i2→h1.3) (from i2 into h1.3), a bias by its
neuron, b(h1.3); Mazur's own example keeps the post's w1..w8. The arrays behind the names
stay 0-based: neuron h1.3 is column 2 of `tr.layers[0].delta`, and w(i2→h1.3) is the state
dict's `0.weight[2, 1]` (row = the neuron fed, column = the input).
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["neuron_name", "neuron_names", "layer_name", "layer_symbol", "weight_name", "bias_name"]


def _check(layer: int, sizes: Sequence[int]) -> int:
    last = len(sizes) - 1
    if last < 1:
        raise ValueError(f"names: sizes must list the inputs and at least one layer, got {list(sizes)}")
    if not 0 <= layer <= last:
        raise IndexError(f"names: layer {layer} out of range 0..{last} for sizes {list(sizes)}")
    return last


def layer_symbol(layer: int, sizes: Sequence[int]) -> str:
    """'i' for the inputs (layer 0), 'h' (one hidden layer) or 'h1', 'h2', ... for hidden layer
    `layer`, 'o' for the output layer; `sizes` are the widths, inputs first ([2, 4, 4, 1])."""
    last = _check(layer, sizes)
    if layer == 0:
        return "i"
    if layer == last:
        return "o"
    return "h" if last == 2 else f"h{layer}"


def neuron_name(layer: int, j: int, sizes: Sequence[int]) -> str:
    """The name of neuron j (0-based index) of `layer` (0 = inputs, len(sizes) - 1 = output):
    i1, h2, h1.3 or o1 (see the module docstring)."""
    _check(layer, sizes)
    if not 0 <= j < sizes[layer]:
        raise IndexError(f"names: neuron {j} out of range for layer {layer} of {sizes[layer]}")
    sym = layer_symbol(layer, sizes)
    return f"{sym}.{j + 1}" if sym.startswith("h") and len(sym) > 1 else f"{sym}{j + 1}"


def neuron_names(sizes: Sequence[int]) -> list[list[str]]:
    """Every layer's neuron names, inputs first: [[i1, i2], [h1, h2], [o1]] for [2, 2, 1]."""
    return [[neuron_name(l, j, sizes) for j in range(n)] for l, n in enumerate(sizes)]


def layer_name(layer: int, sizes: Sequence[int]) -> str:
    """'input', 'hidden layer' (one hidden layer) or 'hidden layer 2', or 'output layer'."""
    last = _check(layer, sizes)
    if layer == 0:
        return "input"
    if layer == last:
        return "output layer"
    return "hidden layer" if last == 2 else f"hidden layer {layer}"


def weight_name(layer: int, j: int, i: int, sizes: Sequence[int]) -> str:
    """The weight of the link from neuron i of layer - 1 into neuron j of `layer` (layer >= 1):
    w(i2→h1.3)."""
    if layer < 1:
        raise IndexError("names: weights feed layers 1 and up")
    return f"w({neuron_name(layer - 1, i, sizes)}→{neuron_name(layer, j, sizes)})"


def bias_name(layer: int, j: int, sizes: Sequence[int]) -> str:
    """The bias of neuron j of `layer`: b(h1.3)."""
    if layer < 1:
        raise IndexError("names: biases belong to layers 1 and up")
    return f"b({neuron_name(layer, j, sizes)})"
