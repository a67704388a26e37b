"""The HTML report of a fitted model: ``render_report`` / ``write_report``."""
from .html import render_report, write_report

__all__ = ["render_report", "write_report"]
