"""Which back end evaluates -2 log L: the compiled driver, or the numpy reference.

The compiled driver (engine/_program.pyx) is used whenever it is built;
``XXMPY_KERNEL=numpy`` selects the numpy reference (engine/reference/) for the
whole package instead, and so does a source tree whose kernels are not built.
The fit's and the profile's compiled helpers follow the same switch.
"""
import os

try:
    from . import _program
except ImportError:      # not built (e.g. running from a source tree)
    _program = None

COMPILED = _program is not None and os.environ.get("XXMPY_KERNEL", "") != "numpy"

# the compiled driver's module, or None when the numpy reference runs
program = _program if COMPILED else None
