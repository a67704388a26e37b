"""Build xxmpy with its Cython kernels.

XXMPY_DEBUG=1 turns bounds and wraparound checks back on in the kernels.
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("XXMPY_DEBUG", "") == "1"
directives = {"language_level": 3}
if DEBUG:
    directives.update(boundscheck=True, wraparound=True, initializedcheck=True)

def extension(name, opt="-O3"):
    """xxmpy.<name> from xxmpy/<name>.pyx (dotted name -> path)."""
    return Extension(f"xxmpy.{name}", [f"xxmpy/{name.replace('.', '/')}.pyx"],
                     include_dirs=[np.get_include()], extra_compile_args=[opt],
                     define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])


# the compiled kernels, each beside the Python module it serves; small dense algebra
# is shared through xxmpy/engine/_linalg.pxd
extensions = [
    extension("engine._elimination"),     # assemble, eliminate, posterior on flat buffers
    extension("engine._supernodal"),      # the dense remainder a supernode at a time
    extension("engine._program"),         # one call per evaluation of -2 log L + gradient
    extension("compile._ordering"),       # minimum degree on the dense remainder's units
    extension("fit._cholesky_map", "-O2"),          # optimiser coordinates
    extension("inference._quasi_newton", "-O2"),    # the limit search's BFGS bookkeeping
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
