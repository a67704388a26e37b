"""Front ends that build a whole xxM model from one call, as psychonetrics' model
families do (ml_lvm.py); each returns an ordinary fitted FitResult."""
from .ml_lvm import ml_lnm, ml_lrnm, ml_lvm, ml_rnm

__all__ = ["ml_lvm", "ml_lnm", "ml_rnm", "ml_lrnm"]
