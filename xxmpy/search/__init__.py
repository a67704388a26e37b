"""Stage 6, model search on a fitted model: pruning by Wald tests (prune.py)."""
from .prune import PruneResult, prune

__all__ = ["prune", "PruneResult"]
