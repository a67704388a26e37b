"""Formulas are parsed, not executed: what a formula string may contain by default.

formulaic evaluates parts of a formula as Python (``I(...)``, ``{...}``, any
function call), so a formula from an untrusted source could run code. Before
any of it reaches formulaic, ``check_formula`` reads the string token by token
and accepts only

* names: column names of the data (plain, dotted as in R, or quoted in
  backticks); a plain name that is no column is left to the later checks,
  which say which column is missing (a bare name cannot run code), but a
  dotted one (attribute access), a Python keyword or a dunder is refused;
* numbers;
* the formula operators ``~ + - * / : ^ ** | ( ) ,`` and comparisons
  ``< <= > >= == !=`` (for ``C(x > 2)``);
* calls of the documented transforms ``FUNCTIONS`` (log, log2, log10, exp,
  sqrt, abs, center, scale, poly, bs, C, I), with ``df=`` / ``degree=``
  style keyword arguments of those transforms.

Anything else (strings, braces, brackets, attribute access, other names or
functions) is refused, every offending token named in one error. ``xm.lmer(...,
trusted=True)`` skips this check and lets formulaic evaluate the formula in
full, for formulas the user wrote.
"""
import keyword
import re

import numpy as np

from ..errors import SpecificationError

# transforms a formula may call; sqrt is not in formulaic's own namespace, so
# it is handed to formulaic as context (EVAL_CONTEXT) when building and predicting
FUNCTIONS = ("log", "log2", "log10", "exp", "sqrt", "abs", "center", "scale", "poly", "bs",
             "C", "I")
KEYWORDS = ("df", "degree", "raw", "knots", "include_intercept", "lower_bound", "upper_bound")
EVAL_CONTEXT = {"sqrt": np.sqrt}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<quoted>`[^`]*`)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>\*\*|\|\||<=|>=|==|!=|[~+\-*/:^|(),<>=])
""", re.VERBOSE)


def check_formula(formula, columns, where="lmer"):
    """Raise SpecificationError naming every token of ``formula`` that is not a column
    of ``columns``, a number, a formula operator or a documented transform."""
    columns = {str(c) for c in columns}
    bad, pos, tokens = [], 0, []
    while pos < len(formula):
        m = _TOKEN.match(formula, pos)
        if m is None:
            end = pos + 1
            while end < len(formula) and _TOKEN.match(formula, end) is None:
                end += 1
            bad.append(f"'{formula[pos:end]}' (not a name, number or formula operator)")
            pos = end
            continue
        if m.lastgroup != "space":
            tokens.append((m.lastgroup, m.group()))
        pos = m.end()
    for k, (kind, text) in enumerate(tokens):
        after = tokens[k + 1][1] if k + 1 < len(tokens) else ""
        if kind == "quoted" and text[1:-1] not in columns:
            bad.append(f"{text} (no such column in data=)")
        elif kind == "name" and after == "(":
            if text not in FUNCTIONS:
                bad.append(f"'{text}(' (not one of the transforms {', '.join(FUNCTIONS)})")
        elif kind == "name" and after == "=" and text in KEYWORDS:
            continue
        elif kind == "name" and text not in columns and (
                "." in text or keyword.iskeyword(text) or text.startswith("__")):
            bad.append(f"'{text}' (no such column in data=)")
        elif kind == "op" and text == "=" and not (k and tokens[k - 1][1] in KEYWORDS):
            bad.append("'=' (only as a transform's keyword argument, e.g. df=3)")
    if bad:
        raise SpecificationError(
            [f"{where}: formula '{formula}' has {len(set(bad))} token(s) it does not accept: "
             f"{'; '.join(dict.fromkeys(bad))}. Formulas are parsed, not run as Python: use "
             f"column names, numbers, formula operators and the transforms "
             f"{', '.join(FUNCTIONS)}, or pass trusted=True to evaluate a formula you wrote "
             f"yourself in full."])
