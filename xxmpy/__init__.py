"""xxmpy: n-level structural equation models by exact maximum likelihood.

The pipeline, one subpackage per stage:

    spec/       what the user said (model objects, validation, the level graph)
    compile/    a validated specification -> one frozen Problem of arrays
    engine/     -2 log L, its gradient and the posterior (compiled; numpy reference)
    fit/        the optimiser and its coordinates
    inference/  profile-likelihood CIs, likelihood-ratio tests
    results/    FitResult and its Summary
    report/     the HTML report
    api/        the two user APIs: Model and the xxM functions
    lmm/        lme4 formulas -> xxM models (lmer)
"""
__version__ = "0.1.0"

from .api import (Model, xxmBetweenMatrix, xxmCI, xxmFree, xxmModel, xxmRun, xxmSubmodel,
                  xxmSummary, xxmWithinMatrix)
from .errors import (BoundaryWarning, ConvergenceWarning, HessianWarning,
                     IdentificationWarning, ProblemTooLarge, SpecificationError, XxmError,
                     XxmWarning)
from .assessment.compare import compare
from .inference.anova import AnovaTable, anova
from .inference.profile import ProfileCI
from .lmm import LmerResult, lmer
from .results.fit_result import FitResult
from .results.summary import Summary
from .families import ml_lnm, ml_lrnm, ml_lvm, ml_rnm
from .search import SearchResult, modelsearch, prune, stepup
from .syntax import SemResult, cfa, sem

__all__ = ["Model", "FitResult", "Summary", "ProfileCI", "lmer", "LmerResult", "anova",
           "compare", "prune", "stepup", "modelsearch", "SearchResult", "sem", "cfa", "SemResult", "ml_lvm", "ml_lnm", "ml_rnm", "ml_lrnm",
           "AnovaTable", "xxmModel", "xxmSubmodel", "xxmWithinMatrix", "xxmBetweenMatrix",
           "xxmRun", "xxmCI", "xxmSummary", "xxmFree", "SpecificationError", "ProblemTooLarge",
           "XxmError",
           "XxmWarning", "ConvergenceWarning", "BoundaryWarning", "HessianWarning",
           "IdentificationWarning",
           "__version__"]


def __dir__():
    """The public API only (the stages' subpackages stay importable by name)."""
    return sorted(__all__)
