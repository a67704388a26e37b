"""Stage 6b, judging a fit: saturated and baseline models, fit measures (issue #19).

reference_models.py   the saturated (H1) and baseline (independence) models of a model
fit_measures.py       chisq, CFI, TLI, RMSEA (+ CI), SRMR per level, AIC, BIC, as lavaan
"""
