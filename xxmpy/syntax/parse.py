"""lavaan model syntax -> statements (parsed, never evaluated).

A model is lines of statements; ``#`` and ``!`` start comments; ``;`` separates
statements on one line; a statement that ends with an operator, ``+`` or ``*``
(or whose next line starts with ``+``) continues on the next line. ``level: <name>``
starts a block. A statement is

    lhs [+ lhs ...] OP term [+ term ...]

OP one of ``=~`` ``~`` ``~~`` ``:=`` ``==``, or Mplus' random slope ``s | y ~ x``
(lhs [s], op '|', rhs [y, x]); a term is ``[modifier *]... name`` or
``[modifier *]... 1`` (an intercept, with ``~``); a modifier is a number (a fixed
value), ``NA`` (free), a label, ``start(number)``. The right-hand side of ``:=``
and both sides of ``==`` are arithmetic expressions over labels (expression.py).
Every problem is reported with its line and token, all at once.
"""
import re
from dataclasses import dataclass, field

from ..errors import SpecificationError

OPERATORS = ("=~", "~~", ":=", "==", "~")
REFUSED = {"<~": "formative indicators (<~) are not supported",
           "|": "'|' is a random slope only as 's | y ~ x' (thresholds are not supported)",
           "<": "inequality constraints (<) are not supported",
           ">": "inequality constraints (>) are not supported"}
TOKEN = re.compile(r"""
    (?P<number>(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>=~|~~|:=|==|<~|~|\*|\+|-|/|\^|\(|\)|,|\||<|>)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<space>\s+)
""", re.VERBOSE)
LEVEL = re.compile(r"^\s*level\s*:\s*([A-Za-z0-9_.]+)\s*$")


@dataclass
class Term:
    """One right-hand-side term: a variable (or '1', an intercept) with its modifiers:
    fixed (a number), free (NA), label, start."""
    name: str
    fixed: float = None
    free: bool = False
    label: str = None
    start: float = None


@dataclass
class Statement:
    """lhs names, the operator, rhs terms (or, for := and ==, the expression's source
    text), the level block (None outside blocks) and the line number."""
    lhs: list
    op: str
    rhs: list
    level: str
    line: int
    text: str = ""


@dataclass
class Parsed:
    statements: list = field(default_factory=list)
    levels: list = field(default_factory=list)     # block names, in order


def _lines(model):
    """[(line number, text)] of logical statements: comments stripped, ';' split,
    continuations joined."""
    raw = []
    for number, line in enumerate(model.splitlines(), 1):
        line = re.split(r"[#!]", line, maxsplit=1)[0]
        for part in line.split(";"):
            if part.strip():
                raw.append((number, part.strip()))
    out = []
    for number, text in raw:
        continues = out and (re.search(r"(=~|~~|:=|==|~|\+|\*|-|/|\()\s*$", out[-1][1])
                             or text.startswith("+"))
        if continues and not LEVEL.match(text):
            out[-1] = (out[-1][0], out[-1][1] + " " + text)
        else:
            out.append((number, text))
    return out


def tokenize(text, number, problems):
    """[(kind, value)] of a statement; unknown characters are problems."""
    tokens, at = [], 0
    while at < len(text):
        match = TOKEN.match(text, at)
        if match is None:
            problems.append(f"line {number}: cannot read {text[at:]!r} (in {text!r}).")
            return None
        kind = match.lastgroup
        if kind != "space":
            tokens.append((kind, match.group()))
        at = match.end()
    return tokens


def _split_operator(tokens):
    """(lhs tokens, operator, rhs tokens) at the first model operator, else None."""
    for i, (kind, value) in enumerate(tokens):
        if kind == "op" and (value in OPERATORS or value in REFUSED):
            return tokens[:i], value, tokens[i + 1:]
    return None


def _split(tokens, separator):
    """Token lists between the operator tokens ``separator`` (e.g. '+', '*')."""
    parts, current = [], []
    for token in tokens:
        if token == ("op", separator):
            parts.append(current)
            current = []
        else:
            current.append(token)
    parts.append(current)
    return parts


def _term(tokens, number, text, problems):
    """One rhs term from its tokens: modifiers separated by '*', then the variable."""
    *modifiers, target = _split(tokens, "*")
    if len(target) != 1 or target[0][0] not in ("name", "number") or \
            (target[0][0] == "number" and target[0][1] != "1"):
        shown = " ".join(v for _, v in target) or "nothing"
        problems.append(f"line {number}: expected a variable name (or 1) after the "
                        f"modifiers, found {shown!r} (in {text!r}).")
        return None
    term = Term(target[0][1])
    for modifier in modifiers:
        kinds = [k for k, _ in modifier]
        values = [v for _, v in modifier]
        if kinds == ["number"]:
            term.fixed = float(values[0])
        elif kinds == ["op", "number"] and values[0] in "+-":
            term.fixed = float(values[0] + values[1])
        elif kinds == ["name"] and values[0] == "NA":
            term.free = True
        elif kinds == ["name"]:
            term.label = values[0]
        elif kinds == ["name", "op", "number", "op"] and values[0] == "start" and \
                values[1] == "(" and values[3] == ")":
            term.start = float(values[2])
        elif kinds == ["string"]:
            term.label = values[0][1:-1]
        else:
            shown = " ".join(values) or "nothing"
            why = ("c(...) gives one value per group; groups are not supported"
                   if values[:1] == ["c"] else
                   "a modifier is a number, NA, a label, or start(number)")
            problems.append(f"line {number}: modifier {shown!r} of {target[0][1]!r} is not "
                            f"understood: {why} (in {text!r}).")
    return term


def parse(model):
    """Parsed statements of a lavaan model string; raises SpecificationError naming every
    problem (line, token) together."""
    if not isinstance(model, str):
        raise TypeError(f"sem: model= must be lavaan syntax in a string, got "
                        f"{type(model).__name__}.")
    parsed, problems, level = Parsed(), [], None
    for number, text in _lines(model):
        block = LEVEL.match(text)
        if block:
            level = block.group(1)
            if level in parsed.levels:
                problems.append(f"line {number}: level {level!r} has a block already.")
            parsed.levels.append(level)
            continue
        tokens = tokenize(text, number, problems)
        if tokens is None:
            continue
        split = _split_operator(tokens)
        if split is None:
            problems.append(f"line {number}: no operator (=~, ~, ~~, :=, ==) in {text!r}.")
            continue
        left, op, right = split
        kinds = [k for k, _ in tokens]
        if op == "|" and kinds == ["name", "op", "name", "op", "name"] and \
                tokens[3] == ("op", "~"):
            # Mplus' random slope: s | y ~ x (the slope of y on x varies over clusters)
            parsed.statements.append(Statement([tokens[0][1]], "|",
                                               [Term(tokens[2][1]), Term(tokens[4][1])],
                                               level, number, text))
            continue
        if op in REFUSED:
            problems.append(f"line {number}: {REFUSED[op]} (in {text!r}).")
            continue
        if op in (":=", "=="):
            source = text.split(op, 1)
            parsed.statements.append(Statement([source[0].strip()], op, [source[1].strip()],
                                               level, number, text))
            continue
        lhs = [v for k, v in left if k == "name"]
        if not lhs or any(k not in ("name",) and v != "+" for k, v in left):
            problems.append(f"line {number}: the left-hand side of {op} must be variable "
                            f"names joined by '+', found "
                            f"{' '.join(v for _, v in left) or 'nothing'!r} (in {text!r}).")
            continue
        terms = [_term(piece, number, text, problems) for piece in _split(right, "+")]
        if any(t is None for t in terms):
            continue
        if op in ("=~", "~~") and any(t.name == "1" for t in terms):
            problems.append(f"line {number}: '1' (an intercept) goes with '~' only "
                            f"(in {text!r}).")
            continue
        parsed.statements.append(Statement(lhs, op, terms, level, number, text))
    if problems:
        raise SpecificationError([f"sem: {p}" for p in problems])
    return parsed
