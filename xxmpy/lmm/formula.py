"""lme4 model formulas: split ``y ~ fixed + (expr | group)`` into its parts.

Only the bars are parsed here; the fixed part and each bar's left-hand side
are ordinary Wilkinson formulas that formulaic turns into design matrices
(design.py). Grouping expressions: ``g``, ``a:b`` (interaction of factors),
``a/b`` (nested: ``a`` and ``a:b``), ``a/b/c``.
"""
from dataclasses import dataclass

from ..errors import SpecificationError


@dataclass(frozen=True)
class RandomTerm:
    """One bar term: random effects ``expr`` varying over the groups of ``group``.

    group: tuple of column names whose interaction is the grouping factor.
    correlated: False for ``||`` (one independent block per term of expr).
    """
    expr: str
    group: tuple
    correlated: bool

    @property
    def factor_name(self):
        return ":".join(self.group)


@dataclass(frozen=True)
class ParsedFormula:
    response: str
    fixed: str          # right-hand side of the fixed part ("1" when it has only bars)
    random: tuple       # RandomTerm, in formula order, nested groups expanded


def parse_formula(formula):
    """'y ~ x + (x | g)' -> ParsedFormula; raises SpecificationError naming the problem."""
    if not isinstance(formula, str):
        raise SpecificationError([f"lmer: formula must be a string like "
                                  f"'y ~ x + (1 | g)', got {type(formula).__name__}."])
    lhs, tilde, rhs = formula.partition("~")
    if not tilde or not lhs.strip() or not rhs.strip():
        raise SpecificationError([f"lmer: formula '{formula}' needs a response, '~' and a "
                                  f"right-hand side, like 'y ~ x + (1 | g)'."])
    fixed, random = [], []
    for piece in _split_top(rhs, "+"):
        inner = _bar_content(piece)
        if inner is None:
            if "|" in piece:
                raise SpecificationError([f"lmer: the term '{piece}' in '{formula}' has a bar "
                                          f"outside parentheses; write random effects as "
                                          f"'(expr | group)'."])
            fixed.append(piece)
        else:
            random.extend(_random_terms(inner, formula))
    if not random:
        raise SpecificationError([f"lmer: formula '{formula}' has no random-effects term "
                                  f"'(expr | group)'; a model without one is a linear model."])
    return ParsedFormula(lhs.strip(), " + ".join(fixed) if fixed else "1", tuple(random))


def _split_top(text, sep):
    """Split at ``sep`` outside parentheses; pieces stripped, empty ones dropped."""
    out, depth, cur = [], 0, []
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [p for p in out if p]


def _bar_content(piece):
    """The inside of '( ... | ... )' when the whole piece is one such term, else None."""
    if not (piece.startswith("(") and piece.endswith(")")):
        return None
    depth = 0
    for k, ch in enumerate(piece):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and k < len(piece) - 1:
            return None          # '(a) + (b)' style: the first paren closes early
    inner = piece[1:-1]
    return inner if "|" in _top_level(inner) else None


def _top_level(text):
    """Characters of ``text`` at parenthesis depth 0."""
    depth, out = 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _top_level_strip(group):
    """The grouping expression without enclosing parentheses and blanks."""
    return group.strip().removeprefix("(").removesuffix(")").strip() \
        if group.strip().startswith("(") and group.strip().endswith(")") else group.strip()


def _split_colon(name):
    """Split a grouping expression at ':' outside backticks (`a:b` is one column)."""
    parts, cur, quoted = [], [], False
    for ch in name:
        if ch == "`":
            quoted = not quoted
        if ch == ":" and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _random_terms(inner, formula):
    double = "||" in _top_level(inner)
    parts = _split_top(inner, "|")
    if len(parts) != 2:
        raise SpecificationError([f"lmer: random term '({inner})' in '{formula}' must have "
                                  f"one expression left of the bar and one grouping factor "
                                  f"right of it."])
    expr, group = parts
    names = [g.strip() for g in _top_level_strip(group).split("/")]
    if not all(names) or any(not all(p.strip() for p in _split_colon(g)) for g in names):
        raise SpecificationError([f"lmer: grouping factor '{group}' in '{formula}' is not "
                                  f"of the form g, a:b or a/b."])
    expanded = []
    for k in range(len(names)):                      # a/b/c -> a, a:b, a:b:c
        cols = tuple(c.strip().strip("`") for n in names[:k + 1] for c in _split_colon(n))
        expanded.append(RandomTerm(expr.strip(), cols, not double))
    return expanded
