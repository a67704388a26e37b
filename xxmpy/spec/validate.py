"""Validation of a :class:`~xxmpy.spec.objects.ModelSpec`: every problem, reported together.

The result is a :class:`CheckedModel`: the same specification with matrices
as numpy arrays of the expected shapes, ready for compilation.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ProblemCollector
from .graph import LevelGraph
from .ids import id_positions
from .objects import (BETWEEN_ROLES, BETWEEN_TYPES, DATA_LABEL_PREFIX, FORMS,
                      SCALED_TYPES, SYMMETRIC_TYPES, WITHIN_ROLES, WITHIN_TYPES,
                      scaled_label)


@dataclass
class CheckedMatrix:
    """A matrix with pattern (bool), value (float) and label (object, None if unlabelled)."""
    child: str
    parent: object
    type: str
    pattern: np.ndarray
    value: np.ndarray
    label: np.ndarray
    row_names: list
    col_names: list
    form: str = "cov"       # compile/forms.py

    def describe(self):
        if self.parent is None:
            return f"within matrix '{self.type}' at level '{self.child}'"
        return f"between matrix '{self.type}' from '{self.parent}' to '{self.child}'"


@dataclass
class CheckedModel:
    spec: object
    graph: LevelGraph
    matrices: list


def validate(spec):
    """Check ``spec`` completely; return a CheckedModel or raise SpecificationError."""
    problems = ProblemCollector()
    _check_submodels(spec, problems)
    graph = LevelGraph.from_spec(spec, problems)
    if not problems:
        _check_data(spec, problems)
    matrices = _check_matrices(spec, problems)
    _check_fixed_labels(matrices, problems)
    _check_flat_levels(spec, problems)
    if not problems and not any(m.pattern.any() for m in matrices):
        problems.add("the model has no free parameter: give at least one matrix a "
                     "pattern= with a 1 in it.")
    problems.raise_if_any()
    return CheckedModel(spec=spec, graph=graph, matrices=matrices)


# ----------------------------------------------------------------------------- levels
def _check_submodels(spec, problems):
    for level in spec.duplicate_submodels:
        problems.add(f"xxmSubmodel: level '{level}' was given a submodel twice; "
                     f"give each level exactly one.")
    for level in spec.levels:
        if level not in spec.submodels:
            problems.add(f"level '{level}' is declared in xxmModel(levels=...) but never "
                         f"given a submodel; add xxmSubmodel(model, level='{level}', ...).")
    for level, sub in spec.submodels.items():
        if level not in spec.levels:
            problems.add(f"xxmSubmodel: unknown level '{level}'; the model's levels are "
                         f"{list(spec.levels)}.")
            continue
        seen = {}
        for role, names in (("ys", sub.ys), ("xs", sub.xs), ("etas", sub.etas)):
            for name in names:
                if not isinstance(name, str) or not name:
                    problems.add(f"xxmSubmodel: {role}= at level '{level}' holds {name!r}; "
                                 f"variable names must be non-empty strings.")
                elif name in seen:
                    problems.add(f"xxmSubmodel: variable '{name}' at level '{level}' appears "
                                 f"in both {seen[name]}= and {role}= (or twice); names must "
                                 f"be unique within a level.")
                else:
                    seen[name] = role
        for x, y in sub.regressor_ys.items():
            if seen.get(x) != "xs" or seen.get(y) != "ys":
                problems.add(f"xxmSubmodel: regressor_ys at level '{level}' maps {x!r} to "
                             f"{y!r}; each key must be one of its xs= and each value one of "
                             f"its ys=.")


def _check_flat_levels(spec, problems):
    """A flat level (fixed effects integrated out) holds only etas and no matrices of its own."""
    flat = [level for level, sub in spec.submodels.items() if sub.flat is not False]
    for level in flat:
        sub = spec.submodels[level]
        if not (sub.flat is True or sub.flat in ("reml", "ml")):
            problems.add(f"xxmSubmodel: level '{level}' has flat={sub.flat!r}; expected False, "
                         f"True or 'reml' (fixed effects integrated out: REML) or 'ml' (fixed "
                         f"effects maximised over: ML).")
            continue
        if sub.profiled and len(flat) > 1:
            problems.add(f"xxmSubmodel: level '{level}' has flat='ml' but the model has "
                         f"{len(flat)} flat levels {flat}; fixed effects maximised over (ML) "
                         f"must all be etas of one flat level. Merge them into '{level}'.")
        where = f"xxmSubmodel: level '{level}' has flat={sub.flat!r} (fixed effects with a " \
                f"flat prior)"
        if not sub.etas:
            problems.add(f"{where} but no etas=; list the fixed effects as its etas.")
        for role, names in (("ys", sub.ys), ("xs", sub.xs), ("parents", sub.parents)):
            if names:
                problems.add(f"{where} but also {role}={list(names)}; a flat level holds only "
                             f"etas and has no parents. Move them to another level.")
        for m in spec.matrices:
            if m.child == level:
                problems.add(f"{m.origin}: {m.describe()} is not allowed: level '{level}' is "
                             f"flat, its etas have no mean, covariance or regressions. Load "
                             f"them onto other levels with between matrices instead.")


# ----------------------------------------------------------------------------- data
def _unique(col):
    """Whether an ID column's values are distinct: at once for numbers in increasing
    order (a row number), else by hashing."""
    values = col.to_numpy()
    if values.dtype.kind in "iuf" and values.size > 1 and bool(np.all(values[1:] > values[:-1])):
        return True
    return not col.duplicated().any()


def _check_data(spec, problems):
    ids = {}
    for level in spec.levels:
        sub = spec.submodels[level]
        data = sub.data
        where = f"xxmSubmodel: data= of level '{level}'"
        if not isinstance(data, pd.DataFrame):
            problems.add(f"{where} is {type(data).__name__}; expected a pandas DataFrame "
                         f"with an ID column named '{level}'.")
            continue
        dup_cols = [] if data.columns.is_unique else \
            data.columns[data.columns.duplicated()].unique().tolist()
        if dup_cols:
            problems.add(f"{where} has duplicated column names {dup_cols}; give every "
                         f"column its own name.")
            continue
        if len(data) == 0:
            problems.add(f"{where} has no rows; every level needs at least one unit.")
            continue
        if level not in data.columns:
            problems.add(f"{where} has no ID column '{level}'; name the column that "
                         f"identifies the units of this level exactly as the level.")
            continue
        col = data[level]
        if _has_missing(col):
            problems.add(f"{where}: ID column '{level}' has {int(col.isna().sum())} missing "
                         f"value(s); every unit needs an ID.")
            continue
        if not _unique(col):
            dup = col[col.duplicated()].tolist()[0]
            problems.add(f"{where}: ID column '{level}' has duplicated IDs (first: {dup!r}); "
                         f"each row is one unit, so IDs must be unique.")
        ids[level] = pd.Index(col)
        _check_columns(sub, data, where, problems)
    for level in spec.levels:
        sub = spec.submodels[level]
        if level not in ids:
            continue
        for parent in sub.parents:
            _check_parent_link(sub, parent, ids, problems)


def _check_columns(sub, data, where, problems):
    for role, names, allow_missing in (("ys", sub.ys, True), ("xs", sub.xs, False)):
        for name in names:
            if name not in data.columns:
                problems.add(f"{where} has no column '{name}' listed in {role}=; add the "
                             f"column or remove the name.")
                continue
            dtype = data[name].dtype
            if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype) \
                    or pd.api.types.is_complex_dtype(dtype):
                extra = (" (complex values would lose their imaginary part)"
                         if pd.api.types.is_complex_dtype(dtype) else "")
                problems.add(f"{where}: column '{name}' ({role}=) has dtype "
                             f"{dtype}; expected numbers (float or int){extra}.")
                continue
            if not allow_missing and data[name].isna().any():
                problems.add(f"{where}: covariate column '{name}' (xs=) has "
                             f"{int(data[name].isna().sum())} missing value(s); covariates "
                             f"are conditioned on and may not be missing. Drop those rows or "
                             f"impute.")
            if np.isinf(data[name].to_numpy(dtype=float)).any():
                problems.add(f"{where}: column '{name}' ({role}=) holds infinite values.")


def _has_missing(col):
    """Whether a Series holds missing values (numpy numbers without building a mask
    Series)."""
    values = col.to_numpy()
    if values.dtype.kind in "iub":
        return False
    if values.dtype.kind == "f":
        return bool(np.isnan(values).any())
    return bool(col.isna().any())


def _check_parent_link(sub, parent, ids, problems):
    where = f"xxmSubmodel: data= of level '{sub.level}'"
    data = sub.data
    if parent not in data.columns:
        problems.add(f"{where} has no column '{parent}' for its parent level; add the "
                     f"parent's ID for every row.")
        return
    col = data[parent]
    if _has_missing(col):
        problems.add(f"{where}: parent ID column '{parent}' has {int(col.isna().sum())} "
                     f"missing value(s); every unit must belong to a parent unit.")
        return
    if parent not in ids:
        return
    index = ids[parent]          # not unique where its level's IDs are (reported there)
    missing = id_positions(index, col) < 0 if index.is_unique else ~pd.Index(col).isin(index)
    if missing.any():
        bad = pd.unique(col[missing]).tolist()[:5]
        problems.add(f"{where}: {int(missing.sum())} row(s) point to '{parent}' IDs that "
                     f"are not in the data of level '{parent}' (for example {bad}); add "
                     f"those units to the parent's data or fix the IDs.")


# ----------------------------------------------------------------------------- matrices
def _check_matrices(spec, problems):
    checked, seen = [], set()
    for mspec in spec.matrices:
        if mspec.key in seen:
            problems.add(f"{mspec.origin}: {mspec.describe()} was added twice; add each "
                         f"matrix once.")
            continue
        seen.add(mspec.key)
        matrix = _check_matrix(spec, mspec, problems)
        if matrix is not None:
            checked.append(matrix)
    return checked


def _matrix_roles(spec, m, problems):
    """Row and column variable names of a matrix, or None after recording a problem."""
    if m.child not in spec.submodels or m.child not in spec.levels:
        problems.add(f"{m.origin}: unknown level '{m.child}' for matrix '{m.type}'; the "
                     f"levels with submodels are {list(spec.submodels)}.")
        return None
    child = spec.submodels[m.child]
    if m.parent is None:
        if m.type not in WITHIN_TYPES:
            problems.add(f"{m.origin}: unknown within matrix type '{m.type}' at level "
                         f"'{m.child}'; expected one of {list(WITHIN_TYPES)}.")
            return None
        rows, cols = WITHIN_ROLES[m.type]
        return child.variables(rows), child.variables(cols)
    if m.parent not in spec.submodels:
        problems.add(f"{m.origin}: unknown parent level '{m.parent}' for {m.describe()}.")
        return None
    if m.type not in BETWEEN_TYPES:
        problems.add(f"{m.origin}: unknown between matrix type '{m.type}' from "
                     f"'{m.parent}' to '{m.child}'; expected one of {list(BETWEEN_TYPES)}.")
        return None
    if m.parent not in child.parents:
        problems.add(f"{m.origin}: {m.describe()} is on an undeclared link; level "
                     f"'{m.child}' has parents {list(child.parents)}. Add '{m.parent}' to "
                     f"its parents= or drop the matrix.")
        return None
    rows, cols = BETWEEN_ROLES[m.type]
    return child.variables(rows), spec.submodels[m.parent].variables(cols)


def _as_2d(obj, shape, dtype):
    """Coerce array-like to ``shape``; 1-d input of the right length fills a row or column."""
    arr = np.asarray(obj.to_numpy() if isinstance(obj, (pd.DataFrame, pd.Series)) else obj,
                     dtype=dtype)
    if arr.ndim == 0 and shape == (1, 1):
        return arr.reshape(1, 1)
    if arr.ndim == 1 and (shape[1] == 1 or shape[0] == 1) and arr.size == shape[0] * shape[1]:
        return arr.reshape(shape)
    return arr


def _clean_labels(label, shape):
    if label is None:
        return np.full(shape, None, dtype=object)
    arr = _as_2d(label, shape, object)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        missing = v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""
        out[idx] = None if missing else str(v).strip()
    return out


def _check_matrix(spec, m, problems):
    names = _matrix_roles(spec, m, problems)
    if names is None:
        return None
    row_names, col_names = names
    shape = (len(row_names), len(col_names))
    what = f"{m.origin}: {m.describe()}"
    try:
        pattern = _as_2d(m.pattern, shape, float)
        value = (np.zeros(pattern.shape) if m.value is None else _as_2d(m.value, shape, float))
        label = _clean_labels(m.label, pattern.shape if pattern.ndim == 2 else shape)
    except (TypeError, ValueError) as exc:
        problems.add(f"{what}: pattern=/value=/label= could not be read as numeric "
                     f"matrices ({exc}).")
        return None
    ok = True
    given = [("pattern", pattern)] + [(arg, arr) for arg, arr in (("value", value),
                                                                  ("label", label))
                                      if getattr(m, arg) is not None]
    for arg, arr in given:
        if arr.shape != shape:
            problems.add(f"{what}: {arg}= has shape {arr.shape} but the level's variables "
                         f"need {shape} (rows {list(row_names)}, columns {list(col_names)}).")
            ok = False
    if not ok:      # an omitted value= / label= took the pattern's shape: not reported twice
        return None
    if not np.isin(pattern, (0, 1)).all():
        problems.add(f"{what}: pattern= must hold only 0 (fixed) and 1 (free).")
        return None
    if not np.isfinite(value).all():
        problems.add(f"{what}: value= holds missing or infinite entries; give every element "
                     f"a start value or a fixed value.")
    pattern = pattern.astype(bool)
    _check_data_labels(spec, m, pattern, label, what, problems)
    _check_scaled_labels(m, pattern, label, what, problems)
    if m.type in SYMMETRIC_TYPES and getattr(m, "form", "cov") != "chol":    # L: lower only
        _check_symmetric(pattern, value, label, what, problems)     # chol: lower triangle
    if m.type == "beta" and m.parent is None and (pattern.diagonal().any() or
                                                  np.any(value.diagonal() != 0)):
        problems.add(f"{what}: the diagonal must be fixed at 0 (a variable cannot be "
                     f"regressed on itself).")
    form = _check_form(m, pattern, value, row_names, what, problems)
    return CheckedMatrix(m.child, m.parent, m.type, pattern, value, label,
                         list(row_names), list(col_names), form)


def _check_form(m, pattern, value, names, what, problems):
    """form= of a matrix: one of FORMS, or one per variable of a theta / psi whose
    elements across two forms are fixed at 0; returns it as given (a tuple if a list)."""
    form = getattr(m, "form", "cov")
    if isinstance(form, str):
        forms = [form] * len(names)
    else:
        form = forms = tuple(form)
        if len(forms) != len(names):
            problems.add(f"{what}: form= gives {len(forms)} forms for {len(names)} variables "
                         f"{list(names)}; give one form, or one per variable.")
            return "cov"
    unknown = sorted({f for f in forms if f not in FORMS}, key=str)
    if unknown:
        problems.add(f"{what}: form={unknown[0]!r} is not one of {list(FORMS)}.")
        return "cov"
    if set(forms) == {"cov"}:
        return form
    if m.type not in SYMMETRIC_TYPES:
        problems.add(f"{what}: form={form!r} applies to theta and psi only (a covariance "
                     f"matrix); drop form= here.")
        return "cov"
    forms = np.array(forms)
    scaled = np.isin(forms, ("ggm", "chol")) & ~pattern.diagonal() & (value.diagonal() <= 0)
    for j in np.flatnonzero(scaled):
        problems.add(f"{what}: form {forms[j]!r} needs a positive diagonal (the scale D, or "
                     f"L's diagonal); {names[j]}'s is fixed at {value[j, j]!r}.")
    across = (forms[:, None] != forms[None, :]) & (pattern | (value != 0))
    for r, c in zip(*np.nonzero(np.tril(across))):
        problems.add(f"{what}: {names[r]} ({forms[r]}) and {names[c]} ({forms[c]}) have "
                     f"different forms, so their element must be fixed at 0 (a block "
                     f"diagonal matrix); fix it, or give both the same form.")
    return form


def _finite_numbers(column):
    """A real numeric column without missing values (pandas Series)."""
    return pd.api.types.is_numeric_dtype(column) and \
        not pd.api.types.is_complex_dtype(column) and not column.isna().any()


def _check_data_labels(spec, m, pattern, label, what, problems):
    data = spec.submodels[m.child].data
    for (r, c), lab in np.ndenumerate(label):
        if lab is not None and not lab.startswith(DATA_LABEL_PREFIX) and \
                lab.lower().startswith(DATA_LABEL_PREFIX):
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}'; a data-valued "
                         f"element is labelled '{DATA_LABEL_PREFIX}<column>' in lower case "
                         f"(write '{DATA_LABEL_PREFIX}{lab[len(DATA_LABEL_PREFIX):]}'); "
                         f"any other label names a parameter.")
            continue
        if lab is None or not lab.startswith(DATA_LABEL_PREFIX):
            continue
        column = lab[len(DATA_LABEL_PREFIX):]
        if m.type in SYMMETRIC_TYPES:
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}', but data-valued "
                         f"elements are not allowed in theta or psi.")
        elif pattern[r, c]:
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}' but is free; a "
                         f"data. label fixes the element to the unit's value of column "
                         f"'{column}', so set its pattern to 0.")
        elif not isinstance(data, pd.DataFrame) or column not in data.columns:
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}' but level "
                         f"'{m.child}' has no data column '{column}'.")
        elif not _finite_numbers(data[column]):
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}' but column "
                         f"'{column}' of level '{m.child}' is not numeric or has missing "
                         f"values (complex numbers are not numeric here).")
        elif not np.isfinite(data[column].to_numpy(dtype=float)).all():
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}' but column "
                         f"'{column}' of level '{m.child}' holds infinite values.")


def _check_scaled_labels(m, pattern, label, what, problems):
    """A scaled label ('-b', '0.5*b': a multiple of parameter b) sits on a free element of
    a loading, regression or intercept matrix, with a non-zero coefficient."""
    for (r, c), lab in np.ndenumerate(label):
        coef, name = scaled_label(lab)
        if name == lab:
            continue
        if m.type not in SCALED_TYPES:
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}', a multiple of "
                         f"'{name}'; scaled labels are for {list(SCALED_TYPES)} elements, "
                         f"not variances or covariances.")
        elif coef == 0.0:
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}': a coefficient "
                         f"of 0; fix the element at 0 instead.")
        elif not pattern[r, c]:
            problems.add(f"{what}: element [{r}, {c}] is labelled '{lab}' but is fixed; a "
                         f"scaled label makes a free element a multiple of a parameter.")


def _check_fixed_labels(matrices, problems):
    """A label names one parameter: it may not be on a fixed element (pattern 0) and on a
    free one at once (the fixed element would silently not follow the parameter)."""
    free = {scaled_label(lab)[1] for m in matrices for (r, c), lab in np.ndenumerate(m.label)
            if lab is not None and m.pattern[r, c]}
    for m in matrices:
        for (r, c), lab in np.ndenumerate(m.label):
            if lab in free and not m.pattern[r, c]:
                problems.add(f"{m.describe()}: element [{r}, {c}] is fixed (pattern 0) but "
                             f"labelled '{lab}', a label that is free elsewhere; equal "
                             f"labels are one parameter, so free this element (pattern 1) "
                             f"to hold it equal, or remove its label to keep it fixed.")


def _check_symmetric(pattern, value, label, what, problems):
    if not (pattern == pattern.T).all():
        problems.add(f"{what}: pattern= is not symmetric; give the full symmetric matrix "
                     f"(a free off-diagonal pair is one parameter).")
    if not np.allclose(value, value.T, rtol=0, atol=1e-12):
        problems.add(f"{what}: value= is not symmetric.")
    if not all(label[i, j] == label[j, i] or label[i, j] is None or label[j, i] is None
               for i in range(label.shape[0]) for j in range(i)):
        problems.add(f"{what}: label= is not symmetric; the two elements of an "
                     f"off-diagonal pair must carry the same label.")
