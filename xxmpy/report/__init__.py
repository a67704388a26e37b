"""The HTML report of a fitted model (``FitResult.report`` writes it)."""
from .html import render_report

__all__ = ["render_report"]
