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

extensions = [
    Extension("xxmpy._core._blocks", ["xxmpy/_core/_blocks.pyx"],
              include_dirs=[np.get_include()], extra_compile_args=["-O2"]),
    Extension("xxmpy._core._engine", ["xxmpy/_core/_engine.pyx"],
              include_dirs=[np.get_include()], extra_compile_args=["-O3"]),
    Extension("xxmpy._core._driver", ["xxmpy/_core/_driver.pyx"],
              include_dirs=[np.get_include()], extra_compile_args=["-O3"],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]),
    Extension("xxmpy._core._quasi_newton", ["xxmpy/_core/_quasi_newton.pyx"],
              include_dirs=[np.get_include()], extra_compile_args=["-O2"]),
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
