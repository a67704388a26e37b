"""Stage 2, compilation: a validated specification -> one frozen, complete Problem.

params.py    the parameter table (one parameter per label)
scales.py    each parameter's natural unit from the data (scale-free floors and steps)
forms.py     covariance matrices written as networks, precisions or Cholesky factors
slots.py     the one map from the (engine's) parameter vector to the model matrices
problem.py   the Problem and its parts (LevelData, CompiledMatrix, Units)
schedule.py  the block elimination of the latent precision, planned as index arrays
collapse.py  identical leaf siblings -> sufficient statistics (Helmert, moments)
plan.py      index arrays that build every factor family from the matrices
lowering.py  the schedule lowered to the flat buffers the compiled kernel walks
form.py      what one evaluation walks (collapsed units, plan, lowering, Program)
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from ..spec.objects import SYMMETRIC_TYPES
from .collapse import collapse
from .form import build_form
from .forms import add_scaled_elements, build_form_map
from .params import build_parameter_table
from .problem import (CompiledMatrix, Problem, build_units, level_data,
                      normal_constant)
from .scales import parameter_units
from .slots import MatrixSlots


def compile_problem(checked, collapse_units=True, memory_limit_gb=None, shared_levels=()):
    """spec.CheckedModel -> Problem, frozen and complete.

    The data are copied; nothing later adds to the Problem. collapse_units=False
    evaluates row by row (tests compare the two). memory_limit_gb: what the
    elimination plan may need (budget.py; default XXMPY_MEMORY_LIMIT_GB or half
    the machine's memory): above it, ProblemTooLarge before anything is allocated.
    shared_levels: names of the levels a crossed shard holds whole
    (distributed/crossed.py): kept in the dense remainder in level order, never
    collapsed.
    """
    limit = None if memory_limit_gb is None else float(memory_limit_gb) * 2 ** 30
    spec = checked.spec
    names = list(spec.levels)
    index = {name: k for k, name in enumerate(names)}
    ids = {name: pd.Index(spec.submodels[name].data[name].to_numpy(copy=True))
           for name in names}
    params = build_parameter_table(checked.matrices)
    read = {name: set() for name in names}        # the columns data. elements read
    for m in checked.matrices:
        read[m.child].update(params.element_maps[(m.child, m.parent, m.type)].data_columns)
    levels = [level_data(spec.submodels[name], ids, index, read[name]) for name in names]
    levels = [replace(lev, shared=True) if lev.name in shared_levels else lev
              for lev in levels]
    for arr in (params.start, params.is_variance):
        arr.flags.writeable = False
    param_units = parameter_units(checked, levels, params)
    param_units.flags.writeable = False
    forms, derived = build_form_map(checked.matrices, params.element_maps, params.n,
                                    param_units)
    forms, derived = add_scaled_elements(forms, derived, params.element_maps, params.n)
    n_engine = params.n if forms is None else forms.n_engine
    matrices = {}
    for m in checked.matrices:
        c = index[m.child]
        p = -1 if m.parent is None else index[m.parent]
        key = (m.child, m.parent, m.type)
        emap = derived.get(key, params.element_maps[key])
        data = np.column_stack([levels[c].columns[col] for col in emap.data_columns]) \
            if emap.data_columns else np.zeros((levels[c].n, 0))
        matrices[(c, p, m.type)] = CompiledMatrix(c, p, m.type, emap, data)
    descendants = tuple(tuple(index[d] for d in checked.graph.descendants(name))
                        for name in names)
    units = build_units(levels, matrices, descendants, limit)
    slots = MatrixSlots(units.matrices, n_engine)
    n_observed = int(sum(lev.observed.sum() for lev in levels))
    n_flat = int(sum(lev.n * lev.n_etas for lev in levels if lev.flat))
    n_profiled = int(sum(lev.n * lev.n_etas for lev in levels if lev.profiled))
    base = normal_constant(n_observed, n_flat - n_profiled)
    reduced = collapse(units, descendants, slots, limit) if collapse_units else None
    if reduced is None:
        form = build_form(units, (), base, slots)
    else:
        red_units, contrasts, jacobian = reduced
        form = build_form(red_units, contrasts, base + jacobian, slots)
    return Problem(names, params, slots, units, form, n_observed, n_flat,
                   checked.graph.structure, descendants,
                   _cholesky_blocks(units.matrices, n_engine, params.n), param_units, forms,
                   n_profiled)


def _tril(m):
    return np.tril_indices(m)


def _cholesky_blocks(matrices, n_engine, k):
    """{key: (m, m) parameter indices} of the covariance matrices the optimiser may
    search through Cholesky factors: theta or psi, m >= 2, every element free,
    each element its own label used nowhere else; not a matrix in another form
    (its elements are engine parameters beyond the model's k)."""
    uses = np.zeros(n_engine, int)
    for cm in matrices.values():
        np.add.at(uses, cm.emap.free_param, 1)
    out = {}
    for key, cm in matrices.items():
        m = cm.emap.base.shape[0]
        if key[2] not in SYMMETRIC_TYPES or m < 2 or len(cm.emap.free_param) != m * m \
                or np.any(cm.emap.free_param >= k):
            continue
        slots = np.full((m, m), -1)
        slots[cm.emap.free_rows, cm.emap.free_cols] = cm.emap.free_param
        lower = slots[_tril(m)]
        expected = np.where(np.equal(*_tril(m)), 1, 2)
        if len(np.unique(lower)) == len(lower) and np.array_equal(uses[lower], expected):
            slots.flags.writeable = False
            out[key] = slots
    return out


__all__ = ["compile_problem", "Problem"]
