# Reference numbers for tests/test_fit_measures.py (issue #19): the one-factor-per-level
# variant of lavaan_twolevel_cfa.R (fw =~ y1..y6 within, fb =~ y1..y6 between) on
# lavaan's Demo.twolevel, its fit measures and R-squared.
# Run: Rscript tests/data/r/lavaan_twolevel_cfa1.R (R 4.2, lavaan from Debian's packages)
suppressMessages(library(lavaan))
cat("lavaan", as.character(packageVersion("lavaan")), "\n")
model <- '
level: 1
  fw =~ y1 + y2 + y3 + y4 + y5 + y6
level: 2
  fb =~ y1 + y2 + y3 + y4 + y5 + y6
'
fit <- sem(model, data = Demo.twolevel, cluster = "cluster")
fm <- fitMeasures(fit, c("npar", "logl", "unrestricted.logl", "chisq", "df", "pvalue",
                         "baseline.chisq", "baseline.df", "cfi", "tli", "rmsea",
                         "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.pvalue", "srmr_within",
                         "srmr_between", "aic", "bic"))
cat(sprintf("%s %.8f", names(fm), fm), sep = "\n")
print(sprintf("%s %.8f", names(unlist(lavInspect(fit, "rsquare"))),
              unlist(lavInspect(fit, "rsquare"))))
# the same model with fb's scale set by y4 instead of y1: the between factor is then
# free to be the y4..y6 block, a higher optimum than the one lavaan stops at above
# (where fb's loading on its marker y1 forces it near the y1..y3 block)
model4 <- '
level: 1
  fw =~ y1 + y2 + y3 + y4 + y5 + y6
level: 2
  fb =~ y4 + y1 + y2 + y3 + y5 + y6
'
fit4 <- sem(model4, data = Demo.twolevel, cluster = "cluster")
fm4 <- fitMeasures(fit4, c("npar", "logl", "chisq", "df", "cfi", "tli", "rmsea",
                           "srmr_within", "srmr_between"))
cat(sprintf("marker y4: %s %.8f", names(fm4), fm4), sep = "\n")
print(sprintf("marker y4: %s %.8f", names(unlist(lavInspect(fit4, "rsquare"))),
              unlist(lavInspect(fit4, "rsquare"))))
