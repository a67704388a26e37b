"""Pure-numpy twins of the compiled kernels, with the same signatures."""
import numpy as np


def chol_inverse_logdet(blocks):
    """(n, m, m) SPD blocks -> (inverse lower Cholesky factors, sum of log dets)."""
    try:
        chol = np.linalg.cholesky(blocks)
    except np.linalg.LinAlgError as exc:
        raise ArithmeticError("block not positive definite") from exc
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum()
    return np.linalg.inv(chol), float(logdet)
