# lme4's profile CIs of a REML fit are those of the ML refit (profile.merMod's devfun2
# calls refitML), issue #18 finding 13. Run: Rscript tests/data/r/sleepstudy_confint.R
suppressMessages(library(lme4))
fm1 <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)           # REML
print(confint(fm1, method = "profile", oldNames = FALSE), digits = 8)
print(confint(refitML(fm1), method = "profile", oldNames = FALSE), digits = 8)
print(confint(fm1, method = "Wald"), digits = 8)
