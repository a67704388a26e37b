"""Stage 6, results: every number users see, from one object per fit.

fit_result.py   FitResult: estimates, vcov, fit statistics, the optimisation record
summary.py      Summary: computed once, rendered as text, DataFrames and HTML
"""
