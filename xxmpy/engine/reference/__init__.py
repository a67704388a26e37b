"""The numpy reference path: -2 log L, its gradient and the posterior, readable.

terms.py       every factor family's A, d and pattern inverses at theta (compile/plan.py's arrays)
contrasts.py   the pooled within-group contrasts of collapsed levels
assembly.py    C and b from the factor terms; posterior moments of each term
elimination.py block Cholesky along the schedule; selected inversion (Takahashi)
gradient.py    the Fisher-identity gradient from those moments
blocks.py      small dense blocks in numpy
evaluate.py    one evaluation from all of the above

Compared with the compiled driver in the tests (tests/twin_check.py);
``XXMPY_KERNEL=numpy`` makes the package use it instead of the driver.
"""
from .evaluate import evaluate, posterior

__all__ = ["evaluate", "posterior"]
