"""The level graph: a networkx DAG with an edge parent -> child.

Used at compile time only: it checks the structure, classifies it and gives
the orders that the compiler lowers into integer index arrays.
"""
from dataclasses import dataclass
from itertools import combinations

import networkx as nx


@dataclass
class LevelGraph:
    graph: nx.DiGraph
    levels: list  # in the user's order (lowest first)
    flat: set = frozenset()  # flat-prior levels (fixed effects): not part of the structure

    @classmethod
    def from_spec(cls, spec, problems):
        """Build the DAG from the submodels' parents=, recording problems."""
        g = nx.DiGraph()
        g.add_nodes_from(spec.levels)
        flat = {lvl for lvl, sub in spec.submodels.items() if sub.flat}
        for level, sub in spec.submodels.items():
            if level not in spec.levels:
                continue
            for parent in sub.parents:
                if parent == level:
                    problems.add(f"xxmSubmodel: level '{level}' names itself in parents=.")
                elif parent not in spec.levels:
                    problems.add(f"xxmSubmodel: level '{level}' has unknown parent "
                                 f"'{parent}'; the model's levels are {list(spec.levels)}.")
                else:
                    g.add_edge(parent, level)
        if not nx.is_directed_acyclic_graph(g):
            cycle = " -> ".join(f"'{a}'" for a, _ in nx.find_cycle(g))
            problems.add(f"xxmSubmodel: the parent links form a cycle ({cycle}); a level "
                         f"cannot be its own ancestor.")
        return cls(graph=g, levels=list(spec.levels), flat=flat)

    def parents(self, level):
        return list(self.graph.predecessors(level))

    def descendants(self, level):
        return nx.descendants(self.graph, level)

    def crossed_pairs(self):
        """Pairs of parents of one level where neither is an ancestor of the other.

        Flat levels (one unit holding fixed effects) are left out: they do not
        make a nested design crossed.
        """
        pairs = []
        for level in self.levels:
            parents = sorted(p for p in self.graph.predecessors(level) if p not in self.flat)
            for a, b in combinations(parents, 2):
                if not (nx.has_path(self.graph, a, b) or nx.has_path(self.graph, b, a)):
                    pairs.append((level, a, b))
        return pairs

    @property
    def structure(self):
        """'nested' or 'cross-classified' (judged on the level graph)."""
        return "cross-classified" if self.crossed_pairs() else "nested"


def levels_above(level, parents_of):
    """The set of levels above ``level`` (its parents, theirs, ...); ``parents_of``:
    level -> its direct parents (names or indices alike)."""
    found, todo = set(), list(parents_of(level))
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo += list(parents_of(current))
    return found
