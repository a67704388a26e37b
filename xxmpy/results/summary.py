"""One summary of a fit, computed once, rendered as text, DataFrames and HTML.

A ``Summary`` is a dict (the documented ``{'fit': {...}, 'estimates': DataFrame}``
of ``xxmSummary``, plus whatever tables a front end adds, e.g. lmer's 'fixed'
and 'random') that also carries what its printed form shows: a title, header
lines, blocks of tables under headings, and notes. ``str()`` renders the text
(laid out like lme4's and lavaan's printed summaries), ``to_html()`` the same
as HTML (the report embeds it), ``to_frame()`` the estimates.
"""
from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd


def number(v, digits=6):
    """One number as users read it: 6 significant digits, '' for NaN/None."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "" if np.isnan(v) else ("inf" if v > 0 else "-inf")
        return f"{float(v):.{digits}g}"
    return str(v)


class Summary(dict):
    """A fit's summary: a dict of its numbers and tables, and its printed form.

    Parameters
    ----------
    title : str
        The first line.
    header : list of (str, str)
        Label and value lines under the title (model, data, criteria).
    blocks : list of (str, pandas.DataFrame)
        Tables under headings, in print order.
    notes : list of str
        Lines after the tables (warnings, boundary estimates, CI notes).
    **entries
        The dict's content (at least ``fit`` and ``estimates``).
    """

    def __init__(self, title: str, header: list, blocks: list, notes: list, **entries):
        super().__init__(**entries)
        self.title, self.header, self.blocks, self.notes = title, header, blocks, notes

    def to_frame(self) -> pd.DataFrame:
        """The estimates table (one row per parameter)."""
        return self["estimates"].copy()

    def __str__(self) -> str:
        width = max((len(label) for label, _ in self.header), default=0)
        lines = [self.title, ""]
        lines += [f"  {label:<{width}}  {value}" if label else f"  {value}"
                  for label, value in self.header]
        for heading, table in self.blocks:
            lines += ["", f"{heading}:", _table_text(table)]
        if self.notes:
            lines += [""] + list(self.notes)
        return "\n".join(lines)

    __repr__ = __str__

    def to_html(self) -> str:
        """The same content as HTML (tables with class 'summary')."""
        rows = "".join(f"<tr><th>{escape(label)}</th><td>{escape(value)}</td></tr>"
                       for label, value in self.header)
        parts = [f"<h3>{escape(self.title)}</h3>", f"<table class='summary'>{rows}</table>"]
        for heading, table in self.blocks:
            parts.append(f"<h4>{escape(heading)}</h4>")
            parts.append(_table_html(table))
        parts += [f"<p class='note'>{escape(n)}</p>" for n in self.notes]
        return "\n".join(parts)

    _repr_html_ = to_html


def _table_text(table):
    shown = table.copy()
    for col in shown.columns:
        shown[col] = [number(v) for v in shown[col]]
    return shown.to_string(index=False)


def _table_html(table):
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(number(v))}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return f"<table class='summary'><tr>{head}</tr>{body}</table>"
