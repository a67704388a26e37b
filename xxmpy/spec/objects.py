"""Specification objects: they store what the user said and nothing else.

Validation happens once, in :mod:`xxmpy.spec.validate`; fitting never changes a
specification.
"""
import re
from dataclasses import dataclass, field

WITHIN_TYPES = ("nu", "alpha", "lambda", "beta", "gamma", "kappa", "theta", "psi")
BETWEEN_TYPES = ("lambda", "beta", "gamma", "kappa")
SYMMETRIC_TYPES = ("theta", "psi")
FORMS = ("cov", "ggm", "prec", "chol")    # how a theta / psi is written (compile/forms.py)


def variable_forms(form, m):
    """(m,) the form of each of m variables from form= (one name, or one per variable)."""
    return (form,) * m if isinstance(form, str) else tuple(form)

# (row role, column role) of each matrix type; roles are "y", "x", "eta", "1".
WITHIN_ROLES = {
    "nu": ("y", "1"), "alpha": ("eta", "1"), "lambda": ("y", "eta"),
    "beta": ("eta", "eta"), "gamma": ("eta", "x"), "kappa": ("y", "x"),
    "theta": ("y", "y"), "psi": ("eta", "eta"),
}
# Between matrices: rows are child variables, columns parent variables.
BETWEEN_ROLES = {
    "lambda": ("y", "eta"), "beta": ("eta", "eta"),
    "kappa": ("y", "x"), "gamma": ("eta", "x"),
}
DATA_LABEL_PREFIX = "data."
SIGNED_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"   # 2, -0.5, 1e-3
SCALED_LABEL = re.compile(rf"^(?:(-)|({SIGNED_NUMBER})\*)(\S.*)$")
SCALED_TYPES = ("nu", "alpha", "lambda", "beta", "gamma", "kappa")


def scaled_label(label):
    """(coefficient, parameter label) of a free element's label: '-b' is -1 times the
    parameter b, '0.5*b' is 0.5 times it (loadings, regressions and intercepts only:
    SCALED_TYPES); any other label is (1.0, label)."""
    found = SCALED_LABEL.match(label) if isinstance(label, str) else None
    if not found:
        return 1.0, label
    return (-1.0 if found.group(1) else float(found.group(2))), found.group(3)


@dataclass
class SubmodelSpec:
    """One level: its parents, variables and ID-keyed data table."""
    level: str
    parents: list
    ys: list
    xs: list
    etas: list
    data: object  # pandas.DataFrame, checked by validate
    # etas with a flat (improper) prior, fixed effects: True or "reml" integrates them out
    # (REML), "ml" maximises over them (ML, profiled out at their GLS values)
    flat: object = False
    # xs that hold the values of this level's ys ({x: y}): an observed outcome regressed
    # on another (a kappa on the copy, exact for recursive paths); not covariates
    regressor_ys: dict = field(default_factory=dict)

    @property
    def profiled(self):
        """A flat level whose etas are maximised over (ML), not integrated out (REML)."""
        return isinstance(self.flat, str) and self.flat == "ml"

    def variables(self, role):
        """Variable names for a role: 'y', 'x', 'eta' or '1' (a constant)."""
        return {"y": self.ys, "x": self.xs, "eta": self.etas, "1": ["1"]}[role]


@dataclass
class MatrixSpec:
    """A parameter matrix as given: pattern (1 free, 0 fixed), value, label.

    ``parent`` is None for a within-level matrix.
    """
    child: str
    parent: object
    type: str
    pattern: object
    value: object
    label: object
    origin: str  # the API function that added it, for messages
    form: str = "cov"  # theta / psi only: 'cov', 'ggm', 'prec' or 'chol' (compile/forms.py)

    @property
    def key(self):
        return (self.child, self.parent, self.type)

    def describe(self):
        if self.parent is None:
            return f"within matrix '{self.type}' at level '{self.child}'"
        return f"between matrix '{self.type}' from '{self.parent}' to '{self.child}'"


@dataclass
class ModelSpec:
    """The whole specification: level names (lowest first), submodels, matrices."""
    levels: list
    submodels: dict = field(default_factory=dict)
    matrices: list = field(default_factory=list)
    duplicate_submodels: list = field(default_factory=list)


def is_dask_frame(data):
    """True for a dask.dataframe.DataFrame (dask is imported only for objects of its own
    modules): a table that stays on a cluster (distributed/partitions.py)."""
    if not type(data).__module__.startswith("dask"):
        return False
    import dask.dataframe as dd
    return isinstance(data, dd.DataFrame)


def partitioned(spec):
    """The levels of ``spec`` whose table is a Dask DataFrame."""
    return [name for name, sub in spec.submodels.items() if is_dask_frame(sub.data)]
