# The elimination kernel's C-level entry points (raw pointers, no Python objects),
# called by the per-evaluation driver _program.pyx. Layouts and block targets as in
# compile/lowering.py; (n, P) and (n, S) index arrays row major.
from ._linalg cimport idx


cdef struct DenseFill:
    # a level whose every neighbour block is in the dense remainder: its fill pairs are
    # all pairs of each unit's entries (compile/lowering.LoweredStep.fill)
    const idx* u_ptr        # (n + 1,) each unit's entries are u_ent[u_ptr[u]:u_ptr[u + 1]]
    const idx* u_ent        # (E,) entry indices grouped by unit
    const idx* row          # (E,) the dense row of each entry's neighbour block
    idx base                # the dense remainder's offset in the block buffer
    idx nd                  # its size (leading dimension)

cdef double accumulate_c(const double* A, idx a_step, idx n, idx r, idx M, const double* d,
                         const double* W, const idx* pat, const double* wt, const idx* seg,
                         idx S, const idx* pair_i, const idx* pair_j, idx P,
                         const unsigned char* shared, const idx* off, const idx* ld,
                         const idx* tr, const idx* vec, double* buf, double* rhs,
                         double* work) noexcept nogil

cdef int eliminate_c(double* B, double* R, idx m, idx n, const idx* diag, const idx* rhs_off,
                     idx E, const idx* e_row, const idx* e_off, const idx* e_mb,
                     const idx* e_nb, idx P, const idx* p_e1, const idx* p_e2,
                     const idx* p_off, const idx* p_ld, const idx* p_tr,
                     const DenseFill* fill, double* work, double* logdet,
                     double* zz) noexcept nogil

cdef int interrupted() noexcept nogil

cdef int dense_cholesky(double* A, int n, int lda) noexcept nogil

cdef int dense_inverse(double* A, int n, int lda) noexcept nogil

cdef object take_interruption()

cdef int factor_dense_c(double* buf, double* rhs, idx base, idx rbase, int n,
                        double* logdet, double* zz, bint factored) noexcept nogil

cdef void mean_dense_c(const double* fac, const double* z, double* mean, idx base,
                       idx rbase, int n) noexcept nogil

cdef int posterior_dense_c(const double* fac, double* sig, idx base, int n, int keep,
                           bint last) noexcept nogil

cdef void mean_c(const double* F, const double* z, double* Mn, idx m, idx n,
                 const idx* diag, const idx* rhs_off, idx E, const idx* e_row,
                 const idx* e_off, const idx* e_mb, const idx* e_nb, double* t) noexcept nogil

cdef void posterior_c(const double* F, double* Sg, idx m, idx n,
                      const idx* diag, idx E, const idx* e_row,
                      const idx* e_off, const idx* e_mb, idx P,
                      const idx* p_e1, const idx* p_e2, const idx* p_off, const idx* p_ld,
                      const idx* p_tr, const DenseFill* fill, idx max_block, double* work,
                      double* Acc) noexcept nogil

cdef double residual_c(const double* A, idx a_step, idx n, idx r, idx M, const double* d,
                       const double* W, const idx* pat, const double* wt, const idx* seg,
                       idx S, const idx* vec, const double* mean, double* work) noexcept nogil

cdef void term_gradient_c(const double* A, idx a_step, idx n, idx r, idx M, const double* d,
                          const double* W, const idx* pat, const double* wt, const idx* seg,
                          idx S, const idx* pair_i, const idx* pair_j, idx P, const idx* off,
                          const idx* ld, const idx* tr, const idx* vec, const double* sig,
                          const double* mean, double* gA, double* gd, double* wrw,
                          double* work) noexcept nogil

cdef double accumulate_shared_c(const double* A, idx n, idx r, idx M, const double* d,
                                const double* W, const idx* order, const idx* starts, idx K,
                                const double* wt, const idx* seg, idx S, const idx* pair_i,
                                const idx* pair_j, idx P, const idx* off, const idx* ld,
                                const idx* tr, const idx* vec, double* buf, double* rhs,
                                double* work) noexcept nogil

cdef void term_gradient_shared_c(const double* A, idx n, idx r, idx M, const double* d,
                                 const double* W, const idx* order, const idx* starts, idx K,
                                 const double* wt, const idx* seg, idx S, const idx* pair_i,
                                 const idx* pair_j, idx P, const idx* off, const idx* ld,
                                 const idx* tr, const idx* vec, const double* sig,
                                 const double* mean, double* gA, double* gd, double* wrw,
                                 double* work) noexcept nogil

cdef int eliminate_chain_c(double* B, double* R, idx m, idx n, const idx* diag,
                           const idx* rhs_off, const idx* e_off, const idx* e_mb,
                           const idx* e_nb, const idx* p_off, const idx* p_ld, const idx* p_tr,
                           bint stacked, double* work, double* logdet,
                           double* zz) noexcept nogil

cdef void posterior_chain_c(const double* F, double* Sg, idx m, idx n, const idx* diag,
                            const idx* e_off, const idx* e_mb, const idx* p_off,
                            const idx* p_ld, const idx* p_tr, bint stacked, idx max_block,
                            double* work, double* acc_all) noexcept nogil

cdef void add_moments_c(const double* W, idx K, idx r, const idx* seg, const idx* pair_i,
                        const idx* pair_j, idx P, const unsigned char* shared,
                        const idx* mom_off, const double* mom, const idx* off, const idx* ld,
                        const idx* tr, double* buf, double* work) noexcept nogil

cdef void term_gradient_constant_c(const double* A, idx n, idx r, idx M, const double* d,
                                   const double* W, idx K, const idx* pat, const double* wt,
                                   const idx* seg, idx S, const idx* pair_i,
                                   const idx* pair_j, idx P, const unsigned char* shared,
                                   const idx* mom_off, const double* mom, const idx* off,
                                   const idx* ld, const idx* tr, const idx* vec,
                                   const double* sig, const double* mean, double* gA,
                                   double* gd, double* wrw, double* work) noexcept nogil
