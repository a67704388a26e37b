# Reference numbers for tests/test_syntax.py (issue #21): lavaan's estimates, SEs and
# log L for models written in lavaan syntax, on lavaan's Demo.twolevel
# (../Demo_twolevel.csv): the multilevel tutorial model with covariates, and a
# one-level SEM (two factors, a latent regression, a covariate, labels, an equality,
# a residual covariance), meanstructure = TRUE, observed information.
# Run: Rscript tests/data/r/lavaan_syntax.R (R 4.2, lavaan from Debian's packages)
suppressMessages(library(lavaan))
cat("lavaan", as.character(packageVersion("lavaan")), "\n")
show <- function(fit) {
  cat(sprintf("logl %.8f\n", fitMeasures(fit, "logl")))
  pe <- parameterEstimates(fit)
  pe <- pe[pe$se > 0 | pe$op == "==", c("lhs", "op", "rhs", intersect("level", names(pe)),
                                        "est", "se")]
  for (col in c("est", "se")) pe[[col]] <- sprintf("%.8f", pe[[col]])
  print(pe)
}
# fit measures and lavaan's standardised solution, printed for the tests
one_level <- c("chisq", "df", "cfi", "tli", "rmsea", "srmr")
two_level <- c("chisq", "df", "cfi", "tli", "rmsea", "srmr_within", "srmr_between")
measures <- function(fit, names) print(sprintf("%s %.8f", names, fitMeasures(fit, names)))
std_all <- function(fit) {
  st <- standardizedSolution(fit)
  print(data.frame(lhs = st$lhs, op = st$op, rhs = st$rhs, std = sprintf("%.8f", st$est.std)))
}
tutorial <- '
level: 1
  fw =~ y1 + y2 + y3
  fw ~ x1 + x2 + x3
level: 2
  fb =~ y1 + y2 + y3
  fb ~ w1 + w2
'
cat("model tutorial\n")
show(sem(tutorial, data = Demo.twolevel, cluster = "cluster"))
onelevel <- '
  f1 =~ y1 + a*y2 + a*y3
  f2 =~ y4 + y5 + y6
  f2 ~ f1 + x1
  y1 ~~ y4
'
cat("model onelevel\n")
# information = "observed": lavaan's one-level default is the expected information;
# xxmpy's SEs (like lavaan's two-level ones) come from the observed information
show(sem(onelevel, data = Demo.twolevel, meanstructure = TRUE, information = "observed"))
# defined parameters: an indirect effect x1 -> f1 -> f2, and a nonlinear function
mediation <- '
  f1 =~ y1 + y2 + y3
  f2 =~ y4 + y5 + y6
  f1 ~ a*x1
  f2 ~ b*f1 + x2
  ab := a*b
  ratio := a/(1 + b^2)
'
cat("model mediation\n")
show(sem(mediation, data = Demo.twolevel, meanstructure = TRUE, information = "observed"))
# a two-level model whose between residual variances of y1 and y3 are fixed at 0
# (their between parts are the between factor's alone) and y2's is free
folded <- paste0(tutorial, '
  y1 ~~ 0*y1
  y3 ~~ 0*y3
')
cat("model folded\n")
show(sem(folded, data = Demo.twolevel, cluster = "cluster"))
# a path model of observed variables: a mediator y2, an outcome y1, a covariate x1
path <- '
  y2 ~ a*x1
  y1 ~ b*y2 + c*x1
  y4 ~ y1 + y2
  y1 ~~ y5
  ab := a*b
'
cat("model path\n")
fit <- sem(path, data = Demo.twolevel, meanstructure = TRUE, information = "observed")
show(fit)
cat("fit measures path\n")
measures(fit, one_level)
cat("std.all path\n")
std_all(fit)
# fit measures of the one-level SEM (lavaan's srmr of one level is srmr_bentler with means)
cat("fit measures onelevel\n")
fit <- sem(onelevel, data = Demo.twolevel, meanstructure = TRUE, information = "observed")
measures(fit, one_level)
# lavaan's auto.cov.y: dependent variables (regressed, not predictors, not indicators)
# covary: two latent ones, and (another model) observed ones with y3 missing in the
# first 60 rows (an outcome only), FIML (missing = "ml")
covlatent <- '
  f1 =~ y1 + y2 + y3
  f2 =~ y4 + y5 + y6
  f1 ~ x1
  f2 ~ x1 + x2
'
cat("model covlatent\n")
show(sem(covlatent, data = Demo.twolevel, meanstructure = TRUE, information = "observed"))
covobserved <- '
  y1 ~ x1
  y2 ~ x2
  y3 ~ y1
'
d <- Demo.twolevel
d$y3[1:60] <- NA
cat("model covobserved\n")
show(sem(covobserved, data = d, meanstructure = TRUE, information = "observed",
         missing = "ml"))
# two levels: an outcome with a between part regressed on a within-only y
pathtwolevel <- '
level: 1
  y1 ~ y2 + x1
level: 2
  y1 ~ w1
'
cat("model pathtwolevel\n")
show(sem(pathtwolevel, data = Demo.twolevel, cluster = "cluster"))
# regressions among observed variables at both levels: y1 on y2's within part at level 1,
# y1's between part on y2's at level 2
withinpart <- '
level: 1
  y2 ~ x2
  y1 ~ b*y2 + x1
  y3 ~ y1
level: 2
  y2 ~ w2
  y1 ~ y2 + w1
  y3 ~~ y3
'
cat("model withinpart\n")
fit <- sem(withinpart, data = Demo.twolevel, cluster = "cluster")
show(fit)
cat("fit measures withinpart\n")
measures(fit, two_level)
# a latent regressed on an observed outcome: one level, and two levels (on its within
# part at level 1, on its between part at level 2)
latentony <- '
  f1 =~ y1 + y2 + y3
  y4 ~ x1
  f1 ~ g*y4 + x2
'
cat("model latentony\n")
fit <- sem(latentony, data = Demo.twolevel, meanstructure = TRUE, information = "observed")
show(fit)
cat("fit measures latentony\n")
measures(fit, one_level)
cat("std.all latentony\n")
std_all(fit)
latentony2 <- '
level: 1
  fw =~ y1 + y2 + y3
  y4 ~ x1
  fw ~ y4 + x2
level: 2
  fb =~ y1 + y2 + y3
  y4 ~ w1
  fb ~ y4
'
cat("model latentony2\n")
fit <- sem(latentony2, data = Demo.twolevel, cluster = "cluster")
show(fit)
cat("fit measures latentony2\n")
measures(fit, two_level)
# a regressor whose variance is written is no longer fixed.x: x1 is modelled
modelledx <- '
  f =~ y1 + y2 + y3
  f ~ x1
  x1 ~~ x1
'
cat("model modelledx\n")
show(sem(modelledx, data = Demo.twolevel, meanstructure = TRUE, information = "observed"))
# equality constraints beyond two labels: a multiple of a label, a label at a number
linear <- '
  f1 =~ y1 + a*y2 + b*y3
  f2 =~ y4 + c*y5 + d*y6
  f2 ~ e*f1
  a == 2*b
  d == 0.7
  c == e/2
  ae := a*e
'
cat("model linear\n")
show(sem(linear, data = Demo.twolevel, meanstructure = TRUE, information = "observed"))
