"""Pictures for the report as inline SVG text: the level graph and profile curves.

Plain SVG strings (no plotting library), so a report is one self-contained
file and needs nothing beyond the core dependencies.
"""
from html import escape

import networkx as nx
import numpy as np

CHAR_W = 7.2    # px per character at the 12 px monospace-ish font used in boxes
LINE_H = 16


def _fmt(v):
    return f"{v:.4g}"


def level_layers(graph):
    """Levels grouped by depth: roots (no parents) first, each level one below its
    deepest parent. ``graph``: networkx DiGraph with edges parent -> child."""
    depth = {}
    for node in nx.topological_sort(graph):
        parents = list(graph.predecessors(node))
        depth[node] = 1 + max(depth[p] for p in parents) if parents else 0
    layers = [[] for _ in range(max(depth.values()) + 1)]
    for node in graph.nodes:           # keeps the user's order within a layer
        layers[depth[node]].append(node)
    return layers


def level_graph_svg(graph, boxes, structure):
    """The level DAG, top levels at the top, an arrow from each parent to its child.

    graph: DiGraph parent -> child; boxes: level -> list of text lines (the
    first is the title); structure: 'nested' or 'cross-classified'.
    """
    layers = level_layers(graph)
    layer_of = {lvl: k for k, layer in enumerate(layers) for lvl in layer}
    skips = [(a, b) for a, b in graph.edges if layer_of[b] - layer_of[a] > 1]
    size = {lvl: (max(len(t) for t in lines) * CHAR_W + 20, len(lines) * LINE_H + 12)
            for lvl, lines in boxes.items()}
    gap_x, gap_y, margin = 40, 60, 20
    row_h = [max(size[lvl][1] for lvl in layer) for layer in layers]
    row_w = [sum(size[lvl][0] for lvl in layer) + gap_x * (len(layer) - 1) for layer in layers]
    caption = f"structure: {structure}; arrows point from parent level to child level"
    inner = max(row_w) + (120 if skips else 0)
    width = max(inner, len(caption) * 6.6) + 2 * margin
    height = sum(row_h) + gap_y * (len(layers) - 1) + 2 * margin + 20
    pos, y = {}, margin
    for layer, h, w in zip(layers, row_h, row_w):
        x = (width - w) / 2
        for lvl in layer:
            bw, bh = size[lvl]
            pos[lvl] = (x, y, bw, bh)
            x += bw + gap_x
        y += h + gap_y
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
           f'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
           'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
           'fill="#555"/></marker></defs>']
    for parent, child in graph.edges:
        px, py, pw, ph = pos[parent]
        cx, cy, cw, _ = pos[child]
        if (parent, child) in skips:
            # around the levels in between, on their right
            between = [pos[lvl] for lvl in graph.nodes
                       if layer_of[parent] < layer_of[lvl] < layer_of[child]]
            ctrl = max(bx + bw for bx, _, bw, _ in between) + 60
            x1, y1, x2, y2 = px + 0.85 * pw, py + ph, cx + 0.85 * cw, cy
            d = f"M{x1:.1f},{y1:.1f} C{ctrl:.1f},{y1 + 40:.1f} {ctrl:.1f},{y2 - 40:.1f} " \
                f"{x2:.1f},{y2:.1f}"
        else:
            x1, y1, x2, y2 = px + pw / 2, py + ph, cx + cw / 2, cy
            d = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
        out.append(f'<path d="{d}" fill="none" stroke="#555" stroke-width="1.4" '
                   f'marker-end="url(#arrow)"/>')
    for lvl, (x, y, w, h) in pos.items():
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" '
                   f'fill="#eef3fb" stroke="#3a5a8c" stroke-width="1.2"/>')
        for k, line in enumerate(boxes[lvl]):
            weight = ' font-weight="bold"' if k == 0 else ""
            out.append(f'<text x="{x + 10:.1f}" y="{y + 18 + k * LINE_H:.1f}"{weight}>'
                       f'{escape(line)}</text>')
    out.append(f'<text x="{margin}" y="{height - 8:.0f}" fill="#555">{escape(caption)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def profile_svg(label, trace, cutoff, estimate, lower, upper, width=280, height=190):
    """One profile as lme4 draws it: the signed root of the rise,
    zeta(v) = sign(v - estimate) sqrt(D(v) - D_min), against the parameter.
    zeta is a straight line when the profile is quadratic, so joining the
    points with lines is faithful; the CI is where |zeta| <= sqrt(cutoff)
    (dashed), its finite limits red, the estimate dotted.

    trace: DataFrame with columns value, zeta (sorted by value).
    """
    v = np.asarray(trace["value"], float)
    z = np.asarray(trace["zeta"], float)
    keep = np.isfinite(v) & np.isfinite(z)
    v, z = v[keep], z[keep]
    marks = [x for x in (estimate, lower, upper) if np.isfinite(x)]
    x_lo, x_hi = min(list(v) + marks), max(list(v) + marks)
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0
    root = float(np.sqrt(cutoff))
    z_hi = max(list(np.abs(z)) + [root]) * 1.1
    left, right, top, bottom = 46, 10, 22, 32
    sx = lambda x: left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)  # noqa: E731
    sy = lambda y: top + (1 - (y + z_hi) / (2 * z_hi)) * (height - top - bottom)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" '
           f'font-size="10">',
           f'<text x="{width / 2:.0f}" y="14" text-anchor="middle" font-size="12" '
           f'font-weight="bold">{escape(label)}</text>',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" '
           f'height="{height - top - bottom}" fill="none" stroke="#999"/>']
    for level in (root, -root):
        out += [f'<line x1="{left}" x2="{width - right}" y1="{sy(level):.1f}" '
                f'y2="{sy(level):.1f}" stroke="#777" stroke-dasharray="4,3"/>',
                f'<text x="{left - 4}" y="{sy(level) + 3:.1f}" text-anchor="end">'
                f'{level:+.2f}</text>']
    out += [f'<text x="{left - 4}" y="{sy(0) + 3:.1f}" text-anchor="end">0</text>',
            f'<text x="{left}" y="{height - 18}" text-anchor="start">{_fmt(x_lo)}</text>',
            f'<text x="{width - right}" y="{height - 18}" text-anchor="end">{_fmt(x_hi)}</text>',
            f'<text x="{width / 2:.0f}" y="{height - 4}" text-anchor="middle" fill="#555">'
            f'value; up: zeta = signed root of the rise</text>']
    if np.isfinite(estimate):
        out.append(f'<line x1="{sx(estimate):.1f}" x2="{sx(estimate):.1f}" y1="{top}" '
                   f'y2="{height - bottom}" stroke="#000" stroke-dasharray="1,2"/>')
    for limit in (lower, upper):
        if np.isfinite(limit):
            out.append(f'<line x1="{sx(limit):.1f}" x2="{sx(limit):.1f}" y1="{top}" '
                       f'y2="{height - bottom}" stroke="#c0392b"/>')
    if v.size:
        points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(v, z))
        out.append(f'<polyline points="{points}" fill="none" stroke="#1f5fa8" '
                   f'stroke-width="1.5"/>')
        out += [f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="2" fill="#1f5fa8"/>'
                for a, b in zip(v, z)]
    out.append("</svg>")
    return "\n".join(out)
