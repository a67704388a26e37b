"""Linear mixed models from lme4 formulas, fitted as xxM models (lmer, anova)."""
from .fit import lmer
from .result import LmerResult

__all__ = ["lmer", "LmerResult"]
