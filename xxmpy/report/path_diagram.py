"""The path diagram of a fitted model as inline SVG, as SEM users draw one.

One band per level, the top levels at the top (level_layers): its latent
variables (circles) above its observed variables (boxes: ys, and covariates
xs in grey). Arrows carry the loadings (lambda), regressions (beta, gamma,
kappa), within a level and across levels (a parent's eta to a child's y or
eta); dashed curves join covariances (off-diagonal psi and theta). Each path
is labelled with its estimate (a fixed value in grey, a ``data.`` element by
its column). Variances are not drawn. Only elements that are free, ``data.``
or fixed at a non-zero value appear.
"""
from html import escape

import numpy as np

from ..spec.objects import BETWEEN_ROLES, WITHIN_ROLES
from .svg import level_layers

NODE_GAP, BAND_GAP, ROW_GAP, MARGIN = 100, 130, 105, 30
TOP = 60             # room for the covariance arcs of the first row
RADIUS, BOX_W, BOX_H = 22, 64, 26
MAX_NODES = 80      # larger models get a note instead of an unreadable picture


def _edges(checked, problem, estimates):
    """[(kind, (level, role, name) from, (level, role, name) to, text, free)]."""
    out = []
    for m in checked.matrices:
        if m.type in ("nu", "alpha"):
            continue
        emap = problem.params.element_maps[(m.child, m.parent, m.type)]
        free = {(r, c): (k, coef) for r, c, k, coef in zip(
            emap.free_rows, emap.free_cols, emap.free_param, emap.coefficients)}
        col_level = m.child if m.parent is None else m.parent
        row_role, col_role = (WITHIN_ROLES if m.parent is None else BETWEEN_ROLES)[m.type]
        for r in range(m.pattern.shape[0]):
            for c in range(m.pattern.shape[1]):
                if m.type in ("psi", "theta") and c >= r:
                    continue            # variances are not drawn; one triangle
                lab = m.label[r, c]
                if (r, c) in free:
                    k, coef = free[(r, c)]
                    text, is_free = f"{coef * estimates[k]:.3g}", True
                elif isinstance(lab, str) and lab.startswith("data."):
                    text, is_free = lab, True
                elif m.value[r, c] != 0:
                    text, is_free = f"{m.value[r, c]:.3g}", False
                else:
                    continue
                head = (m.child, row_role, str(m.row_names[r]))
                tail = (col_level, col_role, str(m.col_names[c]))
                kind = "covariance" if m.type in ("psi", "theta") else "path"
                out.append((kind, tail, head, text, is_free))
    return out


def path_diagram_svg(checked, problem, estimates):
    """The diagram (SVG text), or '' with too many variables to draw legibly."""
    spec = checked.spec
    layers = level_layers(checked.graph.graph)
    bands = [level for layer in layers for level in layer]
    rows = []                   # (level, role-group, [names])
    for level in bands:
        sub = spec.submodels[level]
        if sub.etas:
            rows.append((level, "eta", list(sub.etas)))
        observed = [("y", n) for n in sub.ys] + [("x", n) for n in sub.xs]
        if observed:
            rows.append((level, "obs", observed))
    n_nodes = sum(len(names) for _, _, names in rows)
    if n_nodes == 0 or n_nodes > MAX_NODES:
        return ""
    caption = ("circles: latent; boxes: observed (grey: covariates); arrows: loadings and "
               "regressions; dashed: covariances; grey labels: fixed values")
    width = max(max(len(names) for _, _, names in rows) * NODE_GAP + 2 * MARGIN + 80,
                len(caption) * 6.1 + 2 * MARGIN)
    pos, y, last_level = {}, TOP, None
    band_top = {}
    for level, group, names in rows:
        if level != last_level:
            if last_level is not None:
                y += BAND_GAP - ROW_GAP
            band_top[level] = y - 22
            last_level = level
        x0 = (width - (len(names) - 1) * NODE_GAP) / 2
        for k, name in enumerate(names):
            key = (level, "eta", name) if group == "eta" else (level, name[0], name[1])
            pos[key] = (x0 + k * NODE_GAP, y + 18)
        y += ROW_GAP
    height = y - ROW_GAP + 2 * MARGIN + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
           f'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
           '<defs><marker id="pd-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
           'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
           '<path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>']
    levels_drawn = list(dict.fromkeys(level for level, _, _ in rows))
    for k, level in enumerate(levels_drawn):
        top = band_top[level]
        bottom = band_top[levels_drawn[k + 1]] - 8 if k + 1 < len(levels_drawn) \
            else height - MARGIN - 10
        fill = "#f7f9fc" if k % 2 == 0 else "#fdfaf4"
        out.append(f'<rect x="6" y="{top:.1f}" width="{width - 12:.0f}" '
                   f'height="{bottom - top:.1f}" rx="8" fill="{fill}" stroke="#d5dbe5"/>')
        out.append(f'<text x="14" y="{top + 15:.1f}" fill="#3a5a8c" font-weight="bold">'
                   f'{escape(level)}</text>')
    for kind, tail, head, text, is_free in _edges(checked, problem, estimates):
        if tail not in pos or head not in pos:
            continue
        out.append(_edge_svg(kind, pos[tail], pos[head], tail[1], head[1], text, is_free))
    for (level, role, name), (x, y) in pos.items():
        if role == "eta":
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{RADIUS}" fill="#eef3fb" '
                       f'stroke="#3a5a8c" stroke-width="1.3"/>')
        else:
            fill = "#ffffff" if role == "y" else "#eeeeee"
            out.append(f'<rect x="{x - BOX_W / 2:.1f}" y="{y - BOX_H / 2:.1f}" '
                       f'width="{BOX_W}" height="{BOX_H}" fill="{fill}" stroke="#333" '
                       f'stroke-width="1.2"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">'
                   f'{escape(_short(name))}</text>')
    out.append(f'<text x="{MARGIN}" y="{height - 10:.0f}" fill="#555">{caption}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _short(name, size=9):
    return name if len(name) <= size else name[:size - 1] + "\u2026"


def _border(p, q, role):
    """The point where the segment from node centre p towards q leaves p's shape."""
    d = np.subtract(q, p)
    n = float(np.hypot(*d)) or 1.0
    if role == "eta":
        return p[0] + d[0] / n * RADIUS, p[1] + d[1] / n * RADIUS
    sx = (BOX_W / 2) / abs(d[0]) if d[0] else np.inf
    sy = (BOX_H / 2) / abs(d[1]) if d[1] else np.inf
    s = min(sx, sy)
    return p[0] + d[0] * s, p[1] + d[1] * s


def _edge_svg(kind, a, b, role_a, role_b, text, is_free):
    colour = "#222" if is_free else "#999"
    label_fill = "#1f3f6f" if is_free else "#888"
    if kind == "covariance" or np.isclose(a[1], b[1]):
        # an arc above the row (covariances, and paths within one row)
        lift = 26 + 0.18 * abs(b[0] - a[0])
        x1, y1 = a[0], a[1] - (RADIUS if role_a == "eta" else BOX_H / 2)
        x2, y2 = b[0], b[1] - (RADIUS if role_b == "eta" else BOX_H / 2)
        cx, cy = (x1 + x2) / 2, min(y1, y2) - lift
        dash = ' stroke-dasharray="4,3"' if kind == "covariance" else ""
        ends = (' marker-start="url(#pd-arrow)" marker-end="url(#pd-arrow)"'
                if kind == "covariance" else ' marker-end="url(#pd-arrow)"')
        path = (f'<path d="M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}" '
                f'fill="none" stroke="{colour}" stroke-width="1.1"{dash}{ends}/>')
        lx, ly = cx, (y1 + 2 * cy + y2) / 4 - 3
    elif abs(b[1] - a[1]) > 1.5 * ROW_GAP:
        # past the rows in between: bowed to the right, around what lies on the way
        bow = 0.3 * abs(b[1] - a[1])
        cx, cy = (a[0] + b[0]) / 2 + bow, (a[1] + b[1]) / 2
        x1, y1 = _border(a, (cx, cy), role_a)
        x2, y2 = _border(b, (cx, cy), role_b)
        path = (f'<path d="M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}" '
                f'fill="none" stroke="{colour}" stroke-width="1.1" '
                f'marker-end="url(#pd-arrow)"/>')
        lx, ly = (x1 + 2 * cx + x2) / 4, (y1 + 2 * cy + y2) / 4
    else:
        x1, y1 = _border(a, b, role_a)
        x2, y2 = _border(b, a, role_b)
        path = (f'<path d="M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}" stroke="{colour}" '
                f'stroke-width="1.1" marker-end="url(#pd-arrow)"/>')
        lx, ly = x1 + 0.3 * (x2 - x1), y1 + 0.3 * (y2 - y1)
    label = (f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle" fill="{label_fill}" '
             f'font-size="10" stroke="#ffffff" stroke-width="3" paint-order="stroke">'
             f'{escape(text)}</text>')
    return path + label
