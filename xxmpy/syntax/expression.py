"""Arithmetic over parameter labels, for lavaan's ``:=`` (parsed, never evaluated as
Python).

Grammar: expr = term (('+' | '-') term)*; term = factor (('*' | '/') factor)*;
factor = ('-' | '+') factor | power; power = atom ('^' factor)?; atom = number | label |
function '(' expr ')' | '(' expr ')'. Functions: exp, log, sqrt, abs. ``compile``
returns (function of a {label: value} mapping, the labels it reads).
"""
import math
import operator
import re

FUNCTIONS = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs}
TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
                   r"|([A-Za-z_.][A-Za-z0-9_.]*)|(\*\*|[-+*/^()]))")


class ExpressionError(ValueError):
    """A problem in an expression, with what was found where."""


def _tokens(text):
    out, at = [], 0
    text = text.rstrip()
    while at < len(text):
        match = TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise ExpressionError(f"cannot read {text[at:].strip()!r}")
        number, name, op = match.groups()
        out.append(("number", float(number)) if number is not None else
                   ("name", name) if name is not None else ("op", "^" if op == "**" else op))
        at = match.end()
    return out


def compile_expression(text):
    """(f, labels): f({label: value}) -> float; labels: the names it reads (functions
    excluded). Raises ExpressionError."""
    tokens = _tokens(text)
    labels = []
    position = [0]

    def peek():
        return tokens[position[0]] if position[0] < len(tokens) else (None, None)

    def take(expected=None):
        token = peek()
        if token[0] is None or (expected is not None and token != ("op", expected)):
            found = "the end" if token[0] is None else repr(token[1])
            raise ExpressionError(f"expected {expected or 'more'} but found {found}")
        position[0] += 1
        return token

    def binary(operand, operators):
        """A left-associative chain operand (op operand)* over ``operators``."""
        def chain():
            node = operand()
            while peek()[0] == "op" and peek()[1] in operators:
                combine = operators[take()[1]]
                node = (lambda a, b, f: lambda v: f(a(v), b(v)))(node, operand(), combine)
            return node
        return chain

    def factor():
        if peek() in (("op", "-"), ("op", "+")):
            sign = take()[1]
            inner = factor()
            return (lambda a: lambda v: -a(v))(inner) if sign == "-" else inner
        return power()

    def power():
        base = atom()
        if peek() == ("op", "^"):
            take()
            exponent = factor()
            return (lambda a, b: lambda v: a(v) ** b(v))(base, exponent)
        return base

    def atom():
        kind, value = take()
        if kind == "number":
            return lambda v, c=value: c
        if kind == "name" and peek() == ("op", "(") and value in FUNCTIONS:
            take("(")
            inner = expr()
            take(")")
            return (lambda f, a: lambda v: f(a(v)))(FUNCTIONS[value], inner)
        if kind == "name":
            if value not in labels:
                labels.append(value)
            return lambda v, name=value: v[name]
        if (kind, value) == ("op", "("):
            inner = expr()
            take(")")
            return inner
        raise ExpressionError(f"unexpected {value!r}")

    term = binary(lambda: factor(), {"*": operator.mul, "/": operator.truediv})
    expr = binary(term, {"+": operator.add, "-": operator.sub})
    node = expr()
    if position[0] != len(tokens):
        raise ExpressionError(f"unexpected {tokens[position[0]][1]!r} after a complete "
                              f"expression")
    return node, labels
