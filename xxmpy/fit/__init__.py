"""Stage 4, fitting: maximum likelihood over the engine's -2 log L and gradient.

transform.py         optimiser coordinates (covariance blocks through Cholesky factors)
_cholesky_map.pyx    the same map compiled
optimize.py          projected quasi-Newton search, Newton polish, the OptimizationRecord
information.py       random-effects models: the first curvature in closed form (their
                     expected information), the end Hessian's derived column
starts.py            start values from the data (start="auto")
"""
from .optimize import OptimizationRecord, fit_problem

__all__ = ["OptimizationRecord", "fit_problem"]
