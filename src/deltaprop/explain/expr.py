"""A small, safe expression language for `deltaprop explain chain`.

A hand-written tokenizer and a Pratt (precedence-climbing) parser over numbers, variables,
``+ - * / **``, unary minus, parentheses and a fixed table of functions. The user's text is
never handed to ``eval``, ``compile`` or ``ast``: anything outside the grammar is an
`ExprError` that names the 1-based column where it went wrong.

Grammar (lowest to highest precedence)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := "-" unary | "+" unary | power
    power   := atom ("**" unary)?            # right-associative; -x**2 == -(x**2)
    atom    := NUMBER | NAME | FUNC "(" expr ")" | "(" expr ")"
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["ExprError", "FUNCTIONS", "CONSTANTS", "parse", "evaluate", "variables", "to_text"]

FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs")
CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_LENGTH = 500   # keeps every recursive walk far below Python's recursion limit
MAX_DEPTH = 100


class ExprError(ValueError):
    """A malformed or unsupported expression; `.position` is the 1-based column."""

    def __init__(self, message: str, position: int, text: str = ""):
        self.position, self.text, self.reason = position, text, message
        super().__init__(f"{message} at position {position}")

    def pointer(self) -> str:
        """The expression with a caret under the offending column."""
        return f"  {self.text}\n  {' ' * (self.position - 1)}^"


@dataclass(frozen=True)
class Token:
    kind: str    # "num", "name", "op", "bad", "end"
    text: str
    pos: int     # 1-based column


def tokenize(text: str) -> list[Token]:
    """Split text into numbers, names and operators; a character outside the grammar ends the
    list with a "bad" token, which the parser reports when it reaches it."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH + 1, text[:40])
    toks: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
        elif c.isascii() and (c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isascii() and text[i + 1].isdigit())):
            j = i
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            if j < n and text[j] == ".":
                j += 1
                while j < n and text[j].isascii() and text[j].isdigit():
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k].isascii() and text[k].isdigit():
                    j = k
                    while j < n and text[j].isascii() and text[j].isdigit():
                        j += 1
            if j < n and (text[j] == "." or (text[j].isascii() and (text[j].isalnum() or text[j] == "_"))):
                toks.append(Token("bad", f"malformed number {text[i:j + 1]!r}", j + 1))
                break
            toks.append(Token("num", text[i:j], i + 1))
            i = j
        elif c.isascii() and (c.isalpha() or c == "_"):
            j = i
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append(Token("name", text[i:j], i + 1))
            i = j
        elif text.startswith("**", i):
            toks.append(Token("op", "**", i + 1))
            i += 2
        elif c == "^":
            toks.append(Token("bad", "'^' is not a power here: write powers with ** (x**2)", i + 1))
            break
        elif c in "+-*/()":
            toks.append(Token("op", c, i + 1))
            i += 1
        else:
            toks.append(Token("bad", f"unexpected character {c!r}", i + 1))
            break
    toks.append(Token("end", "", n + 1))
    return toks


# AST nodes are tuples: ("num", float), ("var", name), ("neg", a), ("call", fname, a),
# ("bin", op, a, b) with op in + - * / **.


class _Parser:
    def __init__(self, text: str, names: tuple[str, ...]):
        self.text, self.names = text, names
        self.toks, self.i, self.depth = tokenize(text), 0, 0

    def peek(self) -> Token:
        t = self.toks[self.i]
        if t.kind == "bad":
            self.fail(t.text, t)
        return t

    def take(self) -> Token:
        t = self.toks[self.i]
        if t.kind == "bad":  # reported when the parser reaches it, so earlier errors come first
            self.fail(t.text, t)
        self.i += 1
        return t

    def fail(self, msg: str, tok: Token):
        raise ExprError(msg, tok.pos, self.text)

    def expect(self, text: str) -> Token:
        t = self.peek()
        if t.kind != "op" or t.text != text:
            found = "the end of the expression" if t.kind == "end" else repr(t.text)
            self.fail(f"expected {text!r} but found {found}", t)
        return self.take()

    def parse(self):
        if self.peek().kind == "end":
            self.fail("empty expression", self.peek())
        node = self.expr()
        t = self.peek()
        if t.kind != "end":
            self.fail(f"unexpected {t.text!r} after a complete expression", t)
        return node

    def _enter(self, tok: Token):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"expression nested deeper than {MAX_DEPTH} levels", tok)

    def expr(self):
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            op = self.take().text
            node = ("bin", op, node, self.term())
        return node

    def term(self):
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/"):
            op = self.take().text
            node = ("bin", op, node, self.unary())
        return node

    def unary(self):
        t = self.peek()
        if t.kind == "op" and t.text in "+-":
            self._enter(t)
            self.take()
            inner = self.unary()
            self.depth -= 1
            return ("neg", inner) if t.text == "-" else inner
        return self.power()

    def power(self):
        node = self.atom()
        if self.peek().kind == "op" and self.peek().text == "**":
            t = self.take()
            self._enter(t)
            node = ("bin", "**", node, self.unary())
            self.depth -= 1
        return node

    def atom(self):
        t = self.take()
        if t.kind == "num":
            return ("num", float(t.text))
        if t.kind == "name":
            if t.text in FUNCTIONS:
                nxt = self.peek()
                if nxt.kind != "op" or nxt.text != "(":
                    self.fail(f"function {t.text!r} must be called: {t.text}(...)", nxt)
                self.take()
                self._enter(t)
                arg = self.expr()
                self.depth -= 1
                self.expect(")")
                return ("call", t.text, arg)
            if t.text in self.names:
                return ("var", t.text)
            if t.text in CONSTANTS:
                return ("num", CONSTANTS[t.text])
            allowed = ", ".join(self.names) if self.names else "none"
            self.fail(f"unknown name {t.text!r} (variables: {allowed}; functions: {', '.join(FUNCTIONS)}; "
                      f"constants: pi, e)", t)
        if t.kind == "op" and t.text == "(":
            self._enter(t)
            node = self.expr()
            self.depth -= 1
            self.expect(")")
            return node
        found = "the end of the expression" if t.kind == "end" else repr(t.text)
        self.fail(f"expected a number, a variable, a function or '(' but found {found}", t)


def parse(text: str, names: tuple[str, ...] | list[str] = ("x",)):
    """Parse text into a tuple AST; names are the allowed variable names."""
    if not isinstance(text, str):
        raise TypeError(f"parse: expected a string, got {type(text).__name__}")
    return _Parser(text, tuple(names)).parse()


def variables(ast) -> list[str]:
    """The variable names used in ast, in order of first appearance."""
    seen: list[str] = []
    stack = [ast]
    while stack:
        node = stack.pop()
        if node[0] == "var":
            if node[1] not in seen:
                seen.append(node[1])
        elif node[0] == "neg":
            stack.append(node[1])
        elif node[0] == "call":
            stack.append(node[2])
        elif node[0] == "bin":
            stack.extend((node[3], node[2]))
    return seen


def evaluate(ast, env: Mapping[str, Any]):
    """Evaluate ast with deltaprop ops; env maps variable names to Tensors (or numbers)."""
    import deltaprop as dp

    funcs = {"exp": dp.exp, "log": dp.log, "sqrt": dp.sqrt, "sin": dp.sin, "cos": dp.cos, "tanh": dp.tanh,
             "sigmoid": dp.sigmoid, "relu": dp.relu, "abs": dp.abs}
    kind = ast[0]
    if kind == "num":
        return ast[1]
    if kind == "var":
        return env[ast[1]]
    if kind == "neg":
        a = evaluate(ast[1], env)
        return -a
    if kind == "call":
        a = evaluate(ast[2], env)
        if not isinstance(a, dp.Tensor):
            a = dp.tensor(float(a), dtype=_dtype(env))
        return funcs[ast[1]](a)
    op, a, b = ast[1], evaluate(ast[2], env), evaluate(ast[3], env)
    if not isinstance(a, dp.Tensor) and not isinstance(b, dp.Tensor):
        a = dp.tensor(float(a), dtype=_dtype(env))
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b
    return a ** b


def _dtype(env: Mapping[str, Any]):
    import numpy as np

    for v in env.values():
        if hasattr(v, "dtype"):
            return v.dtype
    return np.float64


def to_text(ast) -> str:
    """The AST written back as text (fully parenthesised where precedence needs it)."""
    prec = {"+": 1, "-": 1, "*": 2, "/": 2, "**": 4}

    def go(node, parent: int = 0, right: bool = False) -> str:
        kind = node[0]
        if kind == "num":
            return "%.9g" % node[1]
        if kind == "var":
            return node[1]
        if kind == "call":
            return f"{node[1]}({go(node[2])})"
        if kind == "neg":
            s = "-" + go(node[1], 3)
            return f"({s})" if parent > 3 else s
        op = node[1]
        p = prec[op]
        s = f"{go(node[2], p + (op == '**'))} {op} {go(node[3], p + (op != '**'))}"
        return f"({s})" if p < parent else s

    return go(ast)
