# C-level entry of _blocks.pyx for the per-evaluation driver (_driver.pyx).
cdef int pattern_inverses_c(const double* cov, Py_ssize_t r, const unsigned char* patterns,
                            Py_ssize_t K, double* W, double* ld, double* cond, double* work,
                            Py_ssize_t* obs) noexcept nogil
