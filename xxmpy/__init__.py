"""xxmpy: n-level structural equation models by exact maximum likelihood."""
from .errors import (BoundaryWarning, ConvergenceWarning, HessianWarning, SpecificationError,
                     XxmError, XxmWarning)
from .anova import anova
from .lmm import LmerResult, lmer
from .model import Model
from .xxm import (xxmBetweenMatrix, xxmCI, xxmFree, xxmModel, xxmRun, xxmSubmodel, xxmSummary,
                  xxmWithinMatrix)

__version__ = "0.1.0"

__all__ = ["Model", "lmer", "LmerResult", "anova", "xxmModel", "xxmSubmodel", "xxmWithinMatrix",
           "xxmBetweenMatrix", "xxmRun", "xxmCI", "xxmSummary", "xxmFree", "SpecificationError", "XxmError",
           "XxmWarning", "ConvergenceWarning", "BoundaryWarning", "HessianWarning"]
