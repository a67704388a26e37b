# Reference numbers for tests/test_fit_measures.py (issue #19): lavaan's multilevel
# tutorial model on Demo.twolevel, with within (x1..x3) and between (w1, w2)
# covariates (fixed.x = TRUE, lavaan's default): fit measures, R-squared, and the
# regression rows of the std.all and std.nox solutions.
# Run: Rscript tests/data/r/lavaan_twolevel_covariates.R (R 4.2, lavaan from Debian)
suppressMessages(library(lavaan))
cat("lavaan", as.character(packageVersion("lavaan")), "\n")
model <- '
level: 1
  fw =~ y1 + y2 + y3
  fw ~ x1 + x2 + x3
level: 2
  fb =~ y1 + y2 + y3
  fb ~ w1 + w2
'
fit <- sem(model, data = Demo.twolevel, cluster = "cluster")
fm <- fitMeasures(fit, c("npar", "logl", "unrestricted.logl", "chisq", "df", "pvalue",
                         "baseline.chisq", "baseline.df", "cfi", "tli", "rmsea",
                         "srmr_within", "srmr_between"))
cat(sprintf("%s %.8f", names(fm), fm), sep = "\n")
print(sprintf("%s %.8f", names(unlist(lavInspect(fit, "rsquare"))),
              unlist(lavInspect(fit, "rsquare"))))
ss <- standardizedSolution(fit)
ss <- ss[ss$op == "~", c("lhs", "op", "rhs", "est.std", "se")]
for (col in c("est.std", "se")) ss[[col]] <- sprintf("%.8f", ss[[col]])
print(ss)
ss <- standardizedSolution(fit, type = "std.nox")
ss <- ss[ss$op == "~", c("lhs", "op", "rhs", "est.std", "se")]
for (col in c("est.std", "se")) ss[[col]] <- sprintf("%.8f", ss[[col]])
cat("std.nox\n")
print(ss)
