"""A stacked bar chart as inline SVG, generated here: no chart library, no script.

::

    svg = stacked_bars(buckets, {"team-a": {"2026-11-30T00:00:00Z": 1.2}, ...})

Every key and label is escaped (namespaces, owners and sandbox names come from
records). The colours are SVG ``fill`` attributes, which the page's CSP
allows; each bar segment has a ``<title>`` with its group, bucket and value, and
the table below the chart holds the same numbers for anyone who cannot see it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

__all__ = ["OTHER", "PALETTE", "stacked_bars"]

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b",
           "#9d755d")
"""Colours for the dearest groups, in order (Tableau 10, distinguishable in greyscale order)."""
OTHER = "#bab0ac"
"""The colour of every group past the palette, summed as one."""

_W, _H, _LEFT, _BOTTOM, _TOP = 960, 300, 56, 34, 10


def _label(bucket: str, hourly: bool) -> str:
    return bucket[11:16] if hourly else bucket[5:10]


def stacked_bars(buckets: Sequence[str], values: Mapping[str, Mapping[str, float]], *,
                 hourly: bool, unit: str = "USD") -> tuple[Markup, list[tuple[str, str]]]:
    """An SVG of ``values[key][bucket]`` stacked per bucket, and its legend (key, colour).

    ``values`` is ordered dearest first; keys past :data:`PALETTE` are summed as "other".
    """
    keys = list(values)
    shown = keys[:len(PALETTE)]
    legend = [(k, PALETTE[i]) for i, k in enumerate(shown)]
    stacks: list[list[tuple[str, str, float]]] = []
    for bucket in buckets:
        stack = [(k, PALETTE[i], values[k].get(bucket, 0.0)) for i, k in enumerate(shown)]
        rest = sum(values[k].get(bucket, 0.0) for k in keys[len(PALETTE):])
        if rest:
            stack.append(("other", OTHER, rest))
        stacks.append(stack)
    if len(keys) > len(PALETTE):
        legend.append((f"{len(keys) - len(PALETTE)} others", OTHER))
    top = max((sum(v for *_, v in s) for s in stacks), default=0.0) or 1.0
    plot_w, plot_h = _W - _LEFT - 8, _H - _BOTTOM - _TOP
    slot = plot_w / max(len(buckets), 1)
    bar = max(slot * 0.8, 1.0)
    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
             f'aria-label="Cost in {escape(unit)} per {"hour" if hourly else "day"}, '
             f'stacked by group; the table below has the numbers" '
             f'>']
    for frac in (0.0, 0.5, 1.0):
        y = _TOP + plot_h * (1 - frac)
        parts.append(f'<line x1="{_LEFT}" x2="{_W - 8}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#d0d7de" stroke-width="1"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{top * frac:.2f}</text>')
    every = max(1, len(buckets) // 12)
    for i, (bucket, stack) in enumerate(zip(buckets, stacks, strict=True)):
        x = _LEFT + i * slot + (slot - bar) / 2
        y = _TOP + plot_h
        for key, colour, value in stack:
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{escape(key)}, {escape(bucket)}: '
                         f'{value:.4f} {escape(unit)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{_H - 12}" text-anchor="middle">'
                         f'{escape(_label(bucket, hourly))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts)), legend
