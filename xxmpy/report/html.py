"""One self-contained HTML page for a fitted model (FitResult).

Sections: fit statistics; the levels (graph picture and variables); every
parameter matrix with free / fixed / label / data marks; the estimates with
standard errors and profile CIs; the profile curves when CIs were computed.
Everything renders from the FitResult; nothing is fetched from outside.
"""
from html import escape

import numpy as np
import pandas as pd

from .. import __version__
from ..spec.objects import DATA_LABEL_PREFIX
from .path_diagram import path_diagram_svg
from .svg import level_graph_svg, profile_svg

CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px 32px; color: #222;
       max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px;
       border-bottom: 1px solid #ccd; padding-bottom: 3px; }
h3 { font-size: 14px; margin: 16px 0 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #d6d9e0; padding: 3px 7px; text-align: right; }
th { background: #f1f3f7; } td.name, th.name { text-align: left; }
td.free { background: #e4f1e4; font-weight: bold; }
td.fixed { color: #333; } td.zero { color: #bbb; }
td.data { background: #fbf1dc; font-style: italic; }
.lab { display: block; font-size: 10px; font-weight: normal; color: #4a7a4a; }
.note { color: #555; font-size: 13px; } .warn { color: #a3341f; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 8px; font-size: 12px;
               border: 1px solid #d6d9e0; }
.profiles { display: flex; flex-wrap: wrap; gap: 8px; }
pre { background: #f6f7f9; padding: 8px; font-size: 12px; }
"""


def _num(v, digits=6):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}g}" if np.isfinite(v) else str(v)
    return escape(str(v))


def _table(header, rows, name_cols=1):
    head = "".join(f'<th class="name">{escape(h)}</th>' if k < name_cols else
                   f"<th>{escape(h)}</th>" for k, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="name">{c}</td>' if k < name_cols else
                                     f"<td>{c}</td>" for k, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def fit_section(summary):
    """The fit statistics and convergence of a results.Summary."""
    fit = summary["fit"]
    rows = [("-2 log L (deviance)", _num(fit["deviance"], 10)),
            ("log L", _num(fit["loglik"], 10)),
            ("parameters", _num(fit["nParameters"])),
            ("observed values (N for BIC)", _num(fit["nObservations"])),
            ("AIC", _num(fit["aic"], 10)), ("BIC", _num(fit["bic"], 10)),
            ("converged", f"{'yes' if fit['converged'] else 'NO'} ({escape(fit['status'])})"),
            ("max |gradient|", f"{fit['gradient_norm']:.2e}"),
            ("evaluations", _num(fit["n_evaluations"]))]
    html = _table(["statistic", "value"], rows)
    if fit["at_bound"]:
        html += (f'<p class="warn">On a bound (variance at 0, no standard error): '
                 f'{escape(", ".join(fit["at_bound"]))}</p>')
    if fit["hessian_not_positive_definite"]:
        html += ('<p class="warn">Hessian not positive definite (not identified?): '
                 f'{escape(", ".join(fit["hessian_not_positive_definite"]))}</p>')
    return "<h2>Fit</h2>" + html


def levels_section(checked, problem):
    spec, graph = checked.spec, checked.graph
    n_units = dict(zip(problem.level_names, (lev.n for lev in problem.levels)))
    boxes, rows = {}, []
    for level in spec.levels:
        sub = spec.submodels[level]
        lines = [f"{level} ({n_units[level]} units{', flat prior' if sub.flat else ''})"]
        lines += [f"{role}: {', '.join(names)}" for role, names in
                  (("ys", sub.ys), ("xs", sub.xs), ("etas", sub.etas)) if names]
        boxes[level] = lines
        rows.append((escape(level), _num(n_units[level]), escape(", ".join(sub.parents)),
                     escape(", ".join(sub.ys)), escape(", ".join(sub.xs)),
                     escape(", ".join(sub.etas))))
    picture = level_graph_svg(graph.graph, boxes, problem.structure)
    table = _table(["level", "units", "parents", "ys", "xs", "etas"], rows, name_cols=6)
    return (f"<h2>Levels</h2><p class=\"note\">{len(spec.levels)} levels, "
            f"{escape(problem.structure)} structure.</p><div>{picture}</div>{table}")


def diagram_section(checked, problem, estimates):
    picture = path_diagram_svg(checked, problem, estimates)
    if not picture:
        return ""
    return ('<h2>Path diagram</h2><p class="note">Each level in its band, the top levels '
            'at the top; paths labelled with their estimates.</p>'
            f'<div>{picture}</div>')


def _matrix_cells(m, emap, labels, estimates):
    """(text, css class) for every cell of one checked matrix."""
    free = {(r, c): (k, coef) for r, c, k, coef in zip(
        emap.free_rows, emap.free_cols, emap.free_param, emap.coefficients)}
    cells = []
    for r in range(m.pattern.shape[0]):
        row = []
        for c in range(m.pattern.shape[1]):
            lab = m.label[r, c]
            if (r, c) in free:
                k, coef = free[(r, c)]
                shown = labels[k] if coef == 1.0 else \
                    f"-{labels[k]}" if coef == -1.0 else f"{coef:g}*{labels[k]}"
                row.append((f"{_num(coef * estimates[k], 5)}<span class=\"lab\">"
                            f"{escape(shown)}</span>", "free"))
            elif lab is not None and lab.startswith(DATA_LABEL_PREFIX):
                row.append((escape(lab), "data"))
            else:
                v = m.value[r, c]
                row.append((_num(v, 5), "zero" if v == 0 else "fixed"))
        cells.append(row)
    return cells


def matrices_section(checked, problem, estimates):
    labels = problem.params.labels
    parts = ["<h2>Matrices</h2>",
             '<p class="legend"><span style="background:#e4f1e4"><b>free</b>: estimate, '
             'label below</span><span>fixed value</span><span style="background:#fbf1dc">'
             '<i>data.column</i>: each unit\'s own value</span></p>']
    for m in checked.matrices:
        emap = problem.params.element_maps[(m.child, m.parent, m.type)]
        cells = _matrix_cells(m, emap, labels, estimates)
        where = (f"within <b>{escape(m.child)}</b>" if m.parent is None else
                 f"between <b>{escape(m.parent)}</b> &rarr; <b>{escape(m.child)}</b>")
        head = "".join(f"<th>{escape(str(c))}</th>" for c in m.col_names)
        body = "".join(f'<tr><th class="name">{escape(str(rn))}</th>'
                       + "".join(f'<td class="{cls}">{txt}</td>' for txt, cls in row)
                       + "</tr>" for rn, row in zip(m.row_names, cells))
        parts.append(f"<h3>{escape(m.type)}: {where} ({m.pattern.shape[0]} x "
                     f"{m.pattern.shape[1]})</h3><table><tr><th></th>{head}</tr>{body}</table>")
    return "\n".join(parts)


def estimates_section(result, summary):
    est = summary["estimates"]
    cols = ["label", "child", "parent", "type", "row", "col", "estimate", "se", "z", "p"]
    has_ci = "lower" in est
    if has_ci:
        cols += ["lower", "upper", "lower_status", "upper_status"]
    if "std_all" in est:
        cols += ["std_lv", "std_all"]
    rows = [[_num(getattr(r, c)) for c in cols] for r in est.itertuples()]
    html = _table(cols, rows, name_cols=6)
    note = ("Standard errors from the inverse Hessian of -2 log L (times 2); "
            "p from the normal z.")
    if has_ci:
        note += f" CIs: profile likelihood, {100 * result.profile.level:g}%."
    else:
        note += (" No CIs computed: call result.profile_ci() (or xxmCI) before the report, "
                 "or pass --ci to python -m xxmpy report.")
    return f'<h2>Estimates</h2><p class="note">{escape(note)}</p>{html}'


def profiles_section(result):
    prof = result.profile
    if prof is None:
        return ""
    prof.complete_traces()          # profile fits inside each interval, for the curves
    rows = prof.estimates.set_index("label")
    pictures = [profile_svg(lab, prof.traces[lab], prof.cutoff, rows.loc[lab, "estimate"],
                            rows.loc[lab, "lower"], rows.loc[lab, "upper"])
                for lab in prof.traces]
    return ("<h2>Profile likelihood</h2>"
            f"<pre>{escape(prof.describe())}</pre>"
            '<p class="note">Each panel (as lme4 draws profiles): zeta, the signed square '
            'root of the rise of the re-optimised -2 log L, against the parameter; a straight '
            'line when the profile is quadratic. Dashed: +/- the root of the cutoff, where the '
            'CI ends; red: the CI limits; dotted: the estimate.</p>'
            f'<div class="profiles">{"".join(pictures)}</div>')


def _assessable(result):
    """Whether the model has a saturated model (reference_models._components)."""
    from ..assessment.reference_models import _components
    try:
        _components(result.model)
        return True
    except ValueError:
        return False


def assessment_section(summary):
    """Fit measures (with the N they use) and the summary's extra blocks (R-squared,
    modification indices)."""
    fm = summary["fit"].get("fit_measures")
    parts = []
    if fm is not None:
        keys = ["chisq", "df", "pvalue", "baseline_chisq", "baseline_df", "cfi", "tli",
                "nfi", "rfi", "ifi", "rni", "rmsea", "rmsea_ci_lower", "rmsea_ci_upper",
                "rmsea_pvalue"] + [k for k in fm if k.startswith("srmr")] + \
               ["logl", "unrestricted_logl", "baseline_logl", "aic", "bic", "bic2", "ntotal"]
        rows = [(k, _num(fm[k], 8)) for k in keys if k in fm]
        parts.append(f'<p class="note">Against the saturated and baseline models (lavaan\'s '
                     f'definitions); RMSEA and BIC use N = ntotal = {int(fm["ntotal"])} '
                     f'rows of the observed level.</p>' + _table(["measure", "value"], rows))
    extra = [(h, t) for h, t in summary.blocks if h == "R-squared"
             or h.startswith("Modification indices")]
    for heading, table in extra:
        cols = list(table.columns)
        rows = [[escape(_num(v)) for v in row] for row in table.itertuples(index=False)]
        names = sum(not pd.api.types.is_numeric_dtype(table[c]) for c in cols)
        parts.append(f"<h3>{escape(heading)}</h3>" + _table(cols, rows, name_cols=names))
    if not parts:
        return ""
    return "<h2>Model fit and assessment</h2>" + "".join(parts)


def render_report(result, title=None, front=None):
    """The whole page as a string. ``result``: a FitResult; ``front``: the front end's
    result it was fitted for (an LmerResult), whose statistics the page shows (lme4
    counts the fixed effects among the parameters of AIC and BIC)."""
    model, problem = result.model, result.problem
    checked = result.checked
    # the one summary the text and HTML render; a model with one observed level (not
    # an lmer front end's) also gets its fit measures, standardised solution,
    # R-squared and largest modification indices, as lavaan users expect
    assess = front is None and _assessable(result)
    summary = result.summary(fit_measures=assess, standardized=assess, rsquare=assess,
                             modindices=assess)
    if front is not None:
        summary["fit"].update(deviance=front.objective, loglik=front.loglik,
                              nParameters=front.n_parameters,
                              nObservations=front.n_observations, aic=front.aic,
                              bic=front.bic)
    title = title or model.name
    method = ("REML: the flat-prior level's etas are integrated out, so -2 log L is the "
              "REML criterion" if problem.estimator == "REML" else
              "maximum likelihood, the flat-prior level's etas (fixed effects) profiled out"
              if problem.n_profiled else "maximum likelihood")
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="note">xxmpy {escape(__version__)} &middot; {method} &middot; '
            f"-2 log L counts the 2&pi; constant</p>",
            fit_section(summary), assessment_section(summary),
            levels_section(checked, problem),
            diagram_section(checked, problem, result.record.estimate) if front is None else "",
            matrices_section(checked, problem, result.record.estimate),
            estimates_section(result, summary), profiles_section(result)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")

