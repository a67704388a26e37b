"""Every exception and warning that xxmpy raises, in one place.

Message style: name the function and argument, the level and matrix, what
was expected, what was found, and how to fix it.
"""


class XxmError(Exception):
    """Base class of xxmpy errors."""


class SpecificationError(XxmError, ValueError):
    """One or more problems in a model specification, reported together.

    ``problems`` holds one message per problem, in the order found.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"the model specification has {n} problem{'s' if n != 1 else ''}:"
        super().__init__("\n".join([head] + [f"  - {p}" for p in self.problems]))


class ProblemTooLarge(XxmError, MemoryError):
    """A model whose elimination plan would need more memory than the limit allows."""


class XxmWarning(UserWarning):
    """Base class of xxmpy warnings."""


class ConvergenceWarning(XxmWarning):
    """The optimiser stopped before the gradient vanished."""


class BoundaryWarning(XxmWarning):
    """An estimate lies on a bound (a variance at zero)."""


class HessianWarning(XxmWarning):
    """The Hessian at the estimates is not positive definite."""


class IdentificationWarning(HessianWarning):
    """-2 log L is flat along a combination of parameters: the model is not identified."""


class ProblemCollector:
    """Collects specification problems and raises them together."""

    def __init__(self):
        self.problems = []

    def add(self, message):
        self.problems.append(message)

    def __bool__(self):
        return bool(self.problems)

    def raise_if_any(self):
        if self.problems:
            raise SpecificationError(self.problems)


class NotPositiveDefinite(ArithmeticError):
    """A matrix that must be positive definite is not (at these parameters).

    Raised inside the numpy reference path; the compiled driver returns +inf
    instead, and the public evaluation functions turn either into +inf.
    """
