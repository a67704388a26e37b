# The dense remainder factored and selectively inverted a supernode at a time
# (compile/ordering.py plans the supernodes; _program.pyx calls these).
from ._linalg cimport idx


cdef struct Supernodal:
    idx ns                  # supernodes (0: the dense path)
    const idx* start        # (ns + 1,) first row of each supernode, start[ns] = n
    const idx* r_ptr        # (ns + 1,)
    const idx* r_idx        # the later rows each supernode's factor block reaches, sorted
    double* panel           # workspaces: max rows x max reach,
    double* other           # the same,
    double* square          # max reach ^ 2

cdef int supernodal_cholesky(double* A, int n, const Supernodal* s) noexcept nogil

cdef int supernodal_inverse(const double* U, double* S, int n, int keep,
                            const Supernodal* s) noexcept nogil
