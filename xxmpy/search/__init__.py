"""Stage 6, model search on a fitted model: pruning by Wald tests (prune.py), step-up
by modification indices and the search alternating both (stepup.py); the record of
every step (steps.py)."""
from .prune import prune
from .steps import SearchResult
from .stepup import modelsearch, stepup

__all__ = ["prune", "stepup", "modelsearch", "SearchResult"]
