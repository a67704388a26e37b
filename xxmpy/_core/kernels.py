"""The kernels the engine calls: compiled when built, the numpy twin otherwise.

Set XXMPY_KERNEL=numpy to force the twin (the tests compare both).
"""
import os

from . import twin

try:
    from . import _blocks as compiled
    from . import _driver, _engine, _quasi_newton
except ImportError:  # not built (e.g. running from a source tree)
    compiled = _driver = _engine = _quasi_newton = None

USE_COMPILED = compiled is not None and os.environ.get("XXMPY_KERNEL", "") != "numpy"

chol_inverse_logdet = compiled.chol_inverse_logdet if USE_COMPILED else twin.chol_inverse_logdet
pattern_inverses = compiled.pattern_inverses if USE_COMPILED else twin.pattern_inverses

# the compiled likelihood kernel (None: the numpy twin in elimination.py runs instead)
engine = _engine if USE_COMPILED else None
# the compiled per-evaluation driver (None: likelihood.py's numpy path runs instead)
driver = _driver if USE_COMPILED else None
# the limit search's compiled BFGS update and profile model (None: numpy in limit_search.py)
quasi_newton = _quasi_newton if USE_COMPILED else None
