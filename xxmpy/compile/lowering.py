"""Lower a Schedule to the flat index arrays the compiled kernel walks.

All blocks of the latent precision C live in one float64 buffer: the
diagonal blocks of each sparse level, the relation blocks of each key, then
the dense remainder (n_dense x n_dense, row major; assembly fills its lower
triangle, row >= column, and the posterior both). The
right-hand side b lives in a second buffer: each sparse level's (n_l, m_l)
vectors, then the dense rows. The same two layouts hold the factor (inverse
diagonal factors, w blocks, z) and the posterior (covariance blocks, means).

A block target is (off, ld, tr): the logical (r, c) block X is stored
at buf[off + i * ld + j] = X[i, j] (tr = 0) or buf[off + j * ld + i] = X[i, j]
(tr = 1). Built once per problem; nothing here depends
on parameter values.
"""
from dataclasses import dataclass

import numpy as np

INT = np.intp


@dataclass
class BlockTargets:
    """Per-entry block targets: off, ld, tr (n,) (see module docstring)."""
    off: np.ndarray
    ld: np.ndarray
    tr: np.ndarray


@dataclass
class LoweredStep:
    """Eliminating the units of one sparse level (block size m).

    diag (n_a,) diagonal block offsets, rhs (n_a,) rhs offsets;
    relation entries: e_row (E,) unit of the level, e_off (E,) block offset,
    e_mb (E,) neighbour block size, e_nb (E,) neighbour's rhs offset;
    pairs: p_e1, p_e2 (P,) entry indices, p (BlockTargets) where w1' w2 goes.
    fill: when every neighbour block is in the dense remainder, (u_ptr (n_a + 1,),
    u_ent (E,), row (E,)): each unit's entries and the dense row of each entry's
    block; the pairs (all pairs of a unit's entries) are then not stored (P = 0).
    """
    m: int
    diag: np.ndarray
    rhs: np.ndarray
    e_row: np.ndarray
    e_off: np.ndarray
    e_mb: np.ndarray
    e_nb: np.ndarray
    p_e1: np.ndarray
    p_e2: np.ndarray
    p: BlockTargets
    fill: tuple = None


@dataclass
class LoweredScope:
    """Where one level's scope blocks go: seg (S+1,) slot boundaries within the
    scope, pair_i / pair_j (P,) slot pairs (i <= j), blk (BlockTargets of
    shape (n, P)), vec (n, S) rhs offsets of each slot's unit."""
    seg: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray
    blk: BlockTargets
    vec: np.ndarray


@dataclass
class Lowered:
    size: int                  # floats in the block buffer
    rhs_size: int              # floats in the rhs buffer
    dense_base: int
    rhs_dense_base: int
    n_dense: int
    max_block: int
    steps: list                # LoweredStep in elimination order
    scopes: dict               # level -> LoweredScope
    # a profiled flat level (ML's fixed effects; eliminated last): the last sparse step
    # (profiled_step) or the dense remainder's last profiled_rows rows
    profiled_step: bool = False
    profiled_rows: int = 0
    # the remainder's factor a supernode at a time (compile/ordering.Supernodes), or None
    supernodes: object = None


class _Layout:
    def __init__(self, sched):
        self.sched = sched
        m, n = sched.block, sched.sizes
        pos = 0
        self.diag_base, self.rhs_base, rpos = {}, {}, 0
        for lvl in sched.sparse_order:
            self.diag_base[lvl] = pos
            pos += int(n[lvl] * m[lvl] * m[lvl])
            self.rhs_base[lvl] = rpos
            rpos += int(n[lvl] * m[lvl])
        self.rel_base = {}
        for key, (rows, _) in sched.relations.items():
            self.rel_base[key] = pos
            pos += int(len(rows) * m[key[0]] * m[key[1]])
        self.dense_base, self.rhs_dense_base = pos, rpos
        self.size = pos + sched.n_dense * sched.n_dense
        self.rhs_size = rpos + sched.n_dense

    def vector(self, target):
        """rhs offsets (n,) of a VectorTarget's first elements."""
        if target.kind == "sparse":
            return (self.rhs_base[target.level]
                    + target.units * self.sched.block[target.level]).astype(INT)
        return (self.rhs_dense_base + target.flat[:, 0]).astype(INT)

    def block(self, target, n):
        """BlockTargets (n entries) of a schedule.Target."""
        sched = self.sched
        if target.kind == "diag":
            m = sched.block[target.level]
            off = self.diag_base[target.level] + target.units * m * m
            return BlockTargets(off.astype(INT), np.full(n, m, INT), np.zeros(n, INT))
        if target.kind == "rel":
            ma, mb = sched.block[target.key[0]], sched.block[target.key[1]]
            off = self.rel_base[target.key] + target.slots * ma * mb
            return BlockTargets(off.astype(INT), np.full(n, mb, INT),
                                np.full(n, int(target.transpose), INT))
        # dense: only the lower triangle (row >= column) is kept, so a block whose
        # corner lies above the diagonal goes, transposed, to its mirror position
        # (the factor and the inverse read the lower triangle only)
        corner = target.flat[:, 0, 0]
        row, col = np.divmod(corner, sched.n_dense)
        upper = row < col
        mirror = col * sched.n_dense + row
        off = self.dense_base + np.where(upper, mirror, corner)
        return BlockTargets(off.astype(INT), np.full(n, sched.n_dense, INT),
                            upper.astype(INT))


def _concat(parts):
    return BlockTargets(*(np.ascontiguousarray(np.concatenate([getattr(p, f) for p in parts]),
                                               dtype=INT) if parts else np.zeros(0, INT)
                          for f in ("off", "ld", "tr")))


def lower(units):
    """Units -> Lowered (flat layouts, per-step and per-scope index arrays)."""
    sched = units.schedule
    lay = _Layout(sched)
    steps = []
    for step in sched.steps:
        a, m = step.level, int(sched.block[step.level])
        unit_ids = np.arange(sched.sizes[a])
        base, e_parts = {}, {"row": [], "off": [], "mb": [], "nb": []}
        count = 0
        for key, target in zip(step.relations, step.rhs_targets):
            rows = sched.relations[key][0]
            mb = int(sched.block[key[1]])
            base[key] = count
            count += len(rows)
            e_parts["row"].append(rows)
            e_parts["off"].append(lay.rel_base[key] + np.arange(len(rows)) * m * mb)
            e_parts["mb"].append(np.full(len(rows), mb))
            e_parts["nb"].append(lay.vector(target))
        p_e1, p_e2, p_targets = [], [], []
        cat = (lambda xs: np.ascontiguousarray(np.concatenate(xs), dtype=INT)
               if xs else np.zeros(0, INT))
        fill = None
        if step.relations and all(k[1] in sched.dense_start for k in step.relations):
            e_row, e_nb = cat(e_parts["row"]), cat(e_parts["nb"])
            # each unit's entries by decreasing dense row: a pair's targets then run
            # along one row of the remainder (its lower triangle), not across rows
            u_ent = np.lexsort((-e_nb, e_row)).astype(INT)
            counts = np.bincount(e_row, minlength=len(unit_ids))
            u_ptr = np.concatenate([[0], np.cumsum(counts)])
            fill = (u_ptr.astype(INT), u_ent, (e_nb - lay.rhs_dense_base).astype(INT))
        for k1, k2, i, j, target in ([] if fill else step.pairs):
            p_e1.append(base[k1] + i)
            p_e2.append(base[k2] + j)
            p_targets.append(lay.block(target, len(i)))
        p_e1, p_e2, p_t = cat(p_e1), cat(p_e2), _concat(p_targets)
        # visit the fill targets in memory order: the scattered writes become streams
        order = np.argsort(p_t.off, kind="stable")
        p_e1, p_e2 = p_e1[order], p_e2[order]
        p_t = BlockTargets(*(np.ascontiguousarray(getattr(p_t, f)[order])
                             for f in ("off", "ld", "tr")))
        steps.append(LoweredStep(
            m, (lay.diag_base[a] + unit_ids * m * m).astype(INT), (lay.rhs_base[a] + unit_ids * m).astype(INT),
            cat(e_parts["row"]), cat(e_parts["off"]), cat(e_parts["mb"]), cat(e_parts["nb"]),
            p_e1, p_e2, p_t, fill))
    scopes = {}
    for c, scope in units.scopes.items():
        seg = units.scope_offsets[c].astype(INT)
        n = units.levels[c].n
        pairs = sched.assembly[c]
        blk = [lay.block(t, n) for _, _, t in pairs]
        stack = (lambda f: np.ascontiguousarray(np.stack([getattr(b, f) for b in blk], axis=1),
                                                dtype=INT) if blk else np.zeros((n, 0), INT))
        vec = np.ascontiguousarray(np.stack([lay.vector(t) for t in sched.assembly_rhs[c]],
                                            axis=1), dtype=INT) if scope else np.zeros((n, 0), INT)
        scopes[c] = LoweredScope(seg, np.array([i for i, _, _ in pairs], INT),
                                 np.array([j for _, j, _ in pairs], INT),
                                 BlockTargets(stack("off"), stack("ld"), stack("tr")),
                                 vec)
    return Lowered(lay.size, lay.rhs_size, lay.dense_base, lay.rhs_dense_base, sched.n_dense,
                   int(max(sched.block.max(initial=0), 1)), steps, scopes,
                   *_profiled(units), sched.supernodes)


def _profiled(units):
    """(profiled_step, profiled_rows) of Lowered: where the profiled flat level's block
    is, which the schedule puts last (at most one such level, spec/validate.py)."""
    sched = units.schedule
    for c, lev in enumerate(units.levels):
        if not lev.profiled:
            continue
        if c in sched.dense_levels:
            if sched.dense_levels[-1] != c:
                raise AssertionError("the profiled flat level is not eliminated last")
            return False, int(sched.sizes[c] * sched.block[c])
        if sched.sparse_order[-1] != c or sched.sizes[c] != 1:
            raise AssertionError("the profiled flat level is not eliminated last")
        return True, 0
    return False, 0
