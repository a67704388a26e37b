"""Small dense blocks in numpy: batched Cholesky inverses and pattern inverses.

The reference path's counterparts of the compiled driver's small dense algebra
(engine/_linalg.pxd and pattern_inverses_c in engine/_program.pyx); they raise
ArithmeticError where the compiled code reports an inadmissible point.
"""
import numpy as np


def chol_inverse_logdet(blocks):
    """(n, m, m) SPD blocks -> (inverse lower Cholesky factors, sum of log dets)."""
    try:
        chol = np.linalg.cholesky(blocks)
    except np.linalg.LinAlgError as exc:
        raise ArithmeticError("block not positive definite") from exc
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
    return np.linalg.inv(chol), float(logdet)


def pattern_inverses(cov, patterns):
    """(r, r) SPD cov, (K, r) 0/1 patterns -> (W (K, r, r), logdet (K,), cond (K,)):
    the inverse of each pattern's observed block embedded in zeros, its log det
    and m ||L^-1 D^1/2||_F^2 >= cond_2 of its correlation (D its diagonal, m its
    size): a condition number blind to the variables' units. The blocks are
    padded with the identity where unobserved, so one batched Cholesky serves
    all patterns."""
    patterns = np.asarray(patterns, bool)
    outer = patterns[:, :, None] & patterns[:, None, :]
    missing = ~patterns
    padded = np.where(outer, cov, 0.0)
    padded[:, np.arange(cov.shape[0]), np.arange(cov.shape[0])] += missing
    try:
        chol = np.linalg.cholesky(padded)
    except np.linalg.LinAlgError as exc:
        raise ArithmeticError("block not positive definite") from exc
    inv_chol = np.linalg.inv(chol)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    diag = np.diagonal(padded, axis1=1, axis2=2)
    frob = np.einsum("kij,kij,kj->k", inv_chol, inv_chol, diag) - missing.sum(axis=1)
    W = np.matmul(inv_chol.transpose(0, 2, 1), inv_chol) * outer
    return W, logdet, patterns.sum(axis=1) * frob
