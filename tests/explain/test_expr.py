"""The safe expression parser: grammar, precedence, and errors that name the position."""
import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.explain.expr import ExprError, evaluate, parse, to_text, variables


def value(text, **env):
    names = tuple(env) or ("x",)
    t = {k: dp.tensor(np.float64(v)) for k, v in env.items()}
    out = evaluate(parse(text, names), t)
    return float(out.item() if hasattr(out, "item") else out)


@pytest.mark.parametrize("text, expected", [
    ("1 + 2 * 3", 7.0), ("(1 + 2) * 3", 9.0), ("2 ** 3 ** 2", 512.0), ("-2 ** 2", -4.0),
    ("2 ** -1", 0.5), ("8 / 4 / 2", 1.0), ("10 - 4 - 3", 3.0), ("--3", 3.0), ("+3", 3.0),
    ("1e-3 * 1000", 1.0), (".5 + 1.", 1.5), ("2.5E2", 250.0), ("pi", math.pi), ("e", math.e),
])
def test_constant_arithmetic_follows_python_precedence(text, expected):
    assert value(text, x=0.0) == pytest.approx(expected, rel=1e-15)


def test_functions_and_variables():
    x = 0.3
    assert value("exp(sin(x**2))", x=x) == pytest.approx(math.exp(math.sin(x * x)), rel=1e-15)
    assert value("sigmoid(x) + relu(-x) + abs(-x) + tanh(x)", x=x) == pytest.approx(
        1 / (1 + math.exp(-x)) + 0 + x + math.tanh(x), rel=1e-15)
    assert value("log(sqrt(x)) * cos(x)", x=x) == pytest.approx(math.log(math.sqrt(x)) * math.cos(x), rel=1e-15)
    assert value("x * y - z / 2", x=2.0, y=3.0, z=4.0) == pytest.approx(4.0)


def test_variables_and_round_trip():
    ast = parse("x * y + sin(x) - -z ** 2", ("x", "y", "z"))
    assert variables(ast) == ["x", "y", "z"]
    again = parse(to_text(ast), ("x", "y", "z"))
    assert again == ast


@pytest.mark.parametrize("text, pos, words", [
    ("__import__('os')", 1, "unknown name '__import__'"),
    ("x.__class__", 2, "unexpected character '.'"),
    ("exp(", 5, "end of the expression"),
    ("2 +* x", 4, "'*'"),
    ("", 1, "empty"),
    ("x +", 4, "end of the expression"),
    ("(x", 3, "expected ')'"),
    ("x)", 2, "unexpected ')'"),
    ("3x", 2, "malformed number"),
    ("1.2.3", 4, "malformed number"),
    ("sin x", 5, "must be called"),
    ("open('f')", 1, "unknown name 'open'"),
    ("x; import os", 2, "unexpected character ';'"),
    ("lambda: 1", 1, "unknown name 'lambda'"),
    ("x[0]", 2, "unexpected character '['"),
    ("x ^ 2", 3, "write powers with ** (x**2)"),
    ("y + 1", 1, "unknown name 'y'"),
    ("exp(1, 2)", 6, "unexpected character ','"),
    ("x**", 4, "end of the expression"),
])
def test_bad_expressions_name_the_position(text, pos, words):
    with pytest.raises(ExprError) as info:
        parse(text)
    assert info.value.position == pos
    assert f"position {pos}" in str(info.value)
    assert words in str(info.value)


def test_no_eval_is_ever_reached(monkeypatch):
    import builtins

    def boom(*a, **k):
        raise AssertionError("eval/compile must never be called")
    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "compile", boom)
    assert value("exp(x) * 2", x=0.0) == 2.0
    with pytest.raises(ExprError):
        parse("__import__('os').system('echo hi')")


def test_limits_on_size_and_depth():
    with pytest.raises(ExprError, match="longer than"):
        parse("x+" * 400 + "x")
    with pytest.raises(ExprError, match="nested deeper"):
        parse("(" * 110 + "x" + ")" * 110)
    with pytest.raises(ExprError, match="nested deeper"):
        parse("-" * 110 + "x")
