"""The two user APIs over one pipeline: ``Model`` (Pythonic) and the xxM functions."""
from .model import Model
from .xxm import (xxmBetweenMatrix, xxmCI, xxmFree, xxmModel, xxmRun, xxmSubmodel, xxmSummary,
                  xxmWithinMatrix)

__all__ = ["Model", "xxmModel", "xxmSubmodel", "xxmWithinMatrix", "xxmBetweenMatrix", "xxmRun",
           "xxmCI", "xxmSummary", "xxmFree"]
