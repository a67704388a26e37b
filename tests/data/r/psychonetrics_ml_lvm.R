# Reference numbers for tests/test_fit_measures.py (issue #19): psychonetrics' ml_lvm
# documentation example (two factors, one loading matrix shared by both levels,
# diagonal residuals on both levels), its data generated with exactly the
# documentation's code (perCluster 10: ../psychonetrics_ml_lvm.csv, the copy of
# ../shared/data's; perCluster 18: ../psychonetrics_ml_lvm_18.csv, written here),
# fitted by lavaan as the equivalent two-level CFA with loadings equal across levels.
# psychonetrics documents chisq 15.92 on 20 df (p 0.72, CFI 1.0) for 10 per cluster
# and 26.557 on 20 df for 18. Run: Rscript tests/data/r/psychonetrics_ml_lvm.R
suppressMessages(library(lavaan))
cat("lavaan", as.character(packageVersion("lavaan")), "\n")
simulate <- function(perCluster) {
  set.seed(2)
  nCluster <- 60; nv <- 6
  cl <- rep(seq_len(nCluster), each = perCluster)
  loadings <- matrix(0, nv, 2); loadings[1:3, 1] <- c(1, .8, .6); loadings[4:6, 2] <- c(1, .8, .6)
  eta_b <- matrix(rnorm(nCluster * 2, 0, sqrt(0.5)), nCluster, 2)
  eta_w <- matrix(rnorm(nCluster * perCluster * 2), nCluster * perCluster, 2)
  u_b   <- matrix(rnorm(nCluster * nv, 0, sqrt(0.3)), nCluster, nv)
  Y <- (eta_b[cl, ] + eta_w) %*% t(loadings) + u_b[cl, ] +
       matrix(rnorm(nCluster * perCluster * nv, 0, sqrt(0.5)), ncol = nv)
  Data <- as.data.frame(Y); colnames(Data) <- paste0("y", 1:nv); Data$cluster <- cl
  Data
}
model <- '
level: 1
  fw1 =~ 1*y1 + l2*y2 + l3*y3
  fw2 =~ 1*y4 + l5*y5 + l6*y6
level: 2
  fb1 =~ 1*y1 + l2*y2 + l3*y3
  fb2 =~ 1*y4 + l5*y5 + l6*y6
'
for (perCluster in c(10, 18)) {
  Data <- simulate(perCluster)
  if (perCluster == 18) write.csv(Data, "../psychonetrics_ml_lvm_18.csv", row.names = FALSE)
  fit <- sem(model, data = Data, cluster = "cluster")
  fm <- fitMeasures(fit, c("npar", "logl", "unrestricted.logl", "chisq", "df", "pvalue",
                           "cfi", "tli", "rmsea", "srmr_within", "srmr_between"))
  cat("perCluster", perCluster, "\n")
  cat(sprintf("%s %.8f", names(fm), fm), sep = "\n")
}
