# Reference numbers for tests/test_fit_measures.py (issue #19): ys observed at both
# levels. lavaan's Demo.twolevel: y1..y3 within clusters, w1 (a cluster variable)
# regressed on the between factor. Run: Rscript tests/data/r/lavaan_twolevel_between_y.R
suppressMessages(library(lavaan))
cat("lavaan", as.character(packageVersion("lavaan")), "\n")
model <- '
level: 1
  fw =~ y1 + y2 + y3
level: 2
  fb =~ y1 + y2 + y3
  w1 ~ fb
'
fit <- sem(model, data = Demo.twolevel, cluster = "cluster")
fm <- fitMeasures(fit, c("npar", "logl", "unrestricted.logl", "chisq", "df", "pvalue",
                         "baseline.chisq", "baseline.df", "cfi", "tli", "rmsea",
                         "srmr_within", "srmr_between", "ntotal"))
cat(sprintf("%s %.8f", names(fm), fm), sep = "\n")
print(sprintf("%s %.8f", names(unlist(lavInspect(fit, "rsquare"))),
              unlist(lavInspect(fit, "rsquare"))))
ss <- standardizedSolution(fit)
ss <- ss[ss$op != "~1" | ss$lhs == "w1", c("lhs", "op", "rhs", "est.std", "se")]
for (col in c("est.std", "se")) ss[[col]] <- sprintf("%.8f", ss[[col]])
print(ss)
imp <- lavInspect(fit, "implied")$cluster
cat("implied cluster cov (lower triangle by rows)\n")
S <- unclass(imp$cov)
cat(sprintf("%.8f", S[lower.tri(S, diag = TRUE)][order(row(S)[lower.tri(S, diag = TRUE)])]), "\n")
cat(rownames(S), "\n")
