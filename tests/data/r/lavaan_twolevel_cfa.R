# Reference numbers for tests/test_fit_measures.py (issue #19): a two-level CFA on
# lavaan's Demo.twolevel (two factors within, y1..y3 and y4..y6; two factors between,
# y1..y3 and y4..y6 too), its fit measures, standardised solution, R-squared,
# implied moments and modification indices (with lavaan's power columns). Run: Rscript tests/data/r/lavaan_twolevel_cfa.R
# (R 4.2, lavaan from Debian's packages). Exports ../Demo_twolevel.csv.
suppressMessages(library(lavaan))
d <- Demo.twolevel
write.csv(d[, c("cluster", "y1", "y2", "y3", "y4", "y5", "y6", "x1", "x2", "x3", "w1", "w2")],
          "../Demo_twolevel.csv", row.names = FALSE)
cat("lavaan", as.character(packageVersion("lavaan")), "\n")
model <- '
level: 1
  fw1 =~ y1 + y2 + y3
  fw2 =~ y4 + y5 + y6
level: 2
  fb1 =~ y1 + y2 + y3
  fb2 =~ y4 + y5 + y6
'
fit <- sem(model, data = d, cluster = "cluster")
fm <- fitMeasures(fit)
print(fm[c("npar", "logl", "unrestricted.logl", "chisq", "df", "pvalue", "baseline.chisq",
           "baseline.df", "cfi", "tli", "nfi", "rfi", "ifi", "rni", "rmsea", "rmsea.ci.lower",
           "rmsea.ci.upper", "rmsea.pvalue", "srmr", "srmr_within", "srmr_between", "aic",
           "bic", "bic2", "ntotal")], digits = 10)
pe <- parameterEstimates(fit, standardized = TRUE)
pe <- pe[, c("lhs", "op", "rhs", "level", "est", "se", "std.lv", "std.all")]
for (col in c("est", "se", "std.lv", "std.all")) pe[[col]] <- sprintf("%.8f", pe[[col]])
print(pe)
print(sprintf("%s %.8f", names(unlist(lavInspect(fit, "rsquare"))),
              unlist(lavInspect(fit, "rsquare"))))
ss <- standardizedSolution(fit, type = "std.all")
ss <- ss[, c("lhs", "op", "rhs", "est.std", "se")]  # rows in parameterEstimates order
for (col in c("est.std", "se")) ss[[col]] <- sprintf("%.8f", ss[[col]])
print(ss)
h1 <- lavInspect(fit, "h1")
print(h1, digits = 10)
imp <- lavInspect(fit, "implied")
for (lev in names(imp)) {
  cat("implied", lev, "cov (lower triangle by rows)\n")
  S <- unclass(imp[[lev]]$cov)
  cat(sprintf("%.8f", S[lower.tri(S, diag = TRUE)][order(row(S)[lower.tri(S, diag = TRUE)])]), "\n")
  cat("implied", lev, "mean\n")
  cat(sprintf("%.8f", unclass(imp[[lev]]$mean)), "\n")
}
# modification indices with the observed information (xxmpy's), and lavaan's default
mo <- modindices(fit, information = "observed", standardized = FALSE)
mo$mi <- sprintf("%.6f", mo$mi); mo$epc <- sprintf("%.6f", mo$epc)
print(mo[, c("lhs", "op", "rhs", "level", "mi", "epc")])
# the power columns (Saris, Satorra & van der Veld 2009), within rows, delta 0.1 and 0.3
for (delta in c(0.1, 0.3)) {
  mo <- modindices(fit, information = "observed", power = TRUE, delta = delta)
  mo <- mo[mo$level == 1, ]
  for (col in c("mi", "epc", "ncp", "power")) mo[[col]] <- sprintf("%.8f", mo[[col]])
  cat("delta", delta, "\n")
  print(mo[, c("lhs", "op", "rhs", "mi", "epc", "delta", "ncp", "power", "decision")])
}
