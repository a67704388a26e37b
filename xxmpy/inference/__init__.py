"""Stage 5, inference on a fit: profile-likelihood CIs and likelihood-ratio tests.

profile.py          profile CIs: the driver, statuses, traces and plots (ProfileCI)
limit_search.py     the direct search for one limit (_quasi_newton.pyx: its BFGS bookkeeping)
local_pool.py       the standard library's process pool for the limits (forked workers)
executors.py        the limits on a user's executor (concurrent.futures or a dask Client)
anova.py            likelihood-ratio tests of nested fits (AnovaTable)
"""
