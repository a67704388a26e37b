# The driver's helper shared with the other compiled modules (fit/_cholesky_map.pyx).
from ._linalg cimport idx


cdef class Arrays:
    """Keeps numpy arrays alive and hands out their data pointers."""
    cdef list keep
    cdef double* f(self, a)
    cdef idx* i(self, a)
    cdef double* zeros(self, idx size)
