"""Stage 1, specification: what the user said, stored as given, then validated.

objects.py   the specification objects (levels, submodels, matrices); they only store
validate.py  every problem of a specification, reported together -> CheckedModel
graph.py     the level graph (networkx): parents, cycles, nested or cross-classified
"""
from .objects import MatrixSpec, ModelSpec, SubmodelSpec
from .validate import CheckedMatrix, CheckedModel, validate

__all__ = ["MatrixSpec", "ModelSpec", "SubmodelSpec", "CheckedMatrix", "CheckedModel",
           "validate"]
