"""A small SVG writer for the report charts (`pipeline.reports.charts` says what to draw,
this module how to write it).

Charts are drawn in points (1/72 inch), as the former matplotlib figures were: a chart
10.5 inches wide is 756 units wide, and the page scales it to its column. Coordinates are
rounded to 0.1 pt (invisible). Texts stay `<text>` elements, so that the guard and a screen
reader can read titles and source lines. Every id is prefixed, so that many charts can
share a page. Nothing here knows about indicators or zones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from matplotlib import colormaps, colors

INCH = 72.0  # points
FONT = "'DejaVu Sans', 'Segoe UI', Arial, sans-serif"
# Where a text sits relative to its baseline, in em (DejaVu Sans): used to place texts by
# their top, middle or bottom as matplotlib's `va` did.
ASCENT, DESCENT = 0.76, 0.24
LINE = 1.2  # line height of multi-line texts, in em


def num(value: float) -> str:
    """A coordinate rounded to 0.1 pt, without trailing zeros: 12.0 -> '12', 3.25 -> '3.2'."""
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def xml(text: object) -> str:
    """Text escaped for XML content and attribute values."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def css_colour(value) -> str:
    """Any colour matplotlib understands (name, '#rrggbb', RGB tuple) as '#rrggbb', so that
    config/report.yaml keeps accepting what it documents."""
    return colors.to_hex(value, keep_alpha=False)


def palette(name: str, positions: Sequence[float]) -> list[str]:
    """Colours of a matplotlib colour map (e.g. 'YlGnBu') at positions between 0 and 1."""
    cmap = colormaps[name]
    return [colors.to_hex(cmap(p), keep_alpha=False) for p in positions]


def nice_ticks(upper: float, nbins: int = 4) -> list[float]:
    """Ticks from 0 to `upper` at a round step (at most nbins + 1), as matplotlib's
    MaxNLocator(nbins) chooses them for an axis starting at 0."""
    if not upper > 0:
        return [0.0]
    raw = upper / nbins
    scale = 10 ** math.floor(math.log10(raw))
    step = next(s * scale for s in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if s * scale >= raw * (1 - 1e-12))
    count = int(math.floor(upper / step + 1e-9))
    return [i * step for i in range(count + 1)]


@dataclass(frozen=True)
class Box:
    """A rectangle of the canvas: left, top, width, height (points, y downwards)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h


def grid(area: Box, nrows: int, ncols: int, wspace: float, hspace: float,
         height_ratios: Sequence[float] | None = None) -> list[Box]:
    """The cells of a grid of `nrows` x `ncols` panels in `area`, row by row; `wspace` and
    `hspace` are the gaps as a fraction of a cell (matplotlib's gridspec)."""
    ratios = list(height_ratios or [1] * nrows)
    cell_w = area.w / (ncols + wspace * (ncols - 1))
    cell_h = area.h / (nrows + hspace * (nrows - 1))
    heights = [r * cell_h * nrows / sum(ratios) for r in ratios]
    boxes = []
    top = area.y
    for row in range(nrows):
        for col in range(ncols):
            boxes.append(Box(area.x + col * cell_w * (1 + wspace), top, cell_w, heights[row]))
        top += heights[row] + hspace * cell_h
    return boxes


def path_data(rings: Iterable[Sequence[tuple[float, float]]], close: bool = True) -> str:
    """SVG path data of polylines (closed as polygons when `close`), repeated points dropped."""
    parts = []
    for ring in rings:
        points, last = [], None
        for x, y in ring:
            point = f"{num(x)} {num(y)}"
            if point != last:
                points.append(point)
                last = point
        if len(points) < 2:
            continue
        parts.append("M" + " L".join(points) + ("Z" if close else ""))
    return "".join(parts)


class Canvas:
    """An SVG image under construction: `width` x `height` points, ids prefixed by `prefix`."""

    def __init__(self, width: float, height: float, prefix: str) -> None:
        self.width, self.height, self.prefix = width, height, prefix
        self.defs: list[str] = []
        self.body: list[str] = []

    def id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    # ---- shapes
    def rect(self, box: Box, fill: str, stroke: str | None = None, stroke_width: float = 0) -> None:
        self.body.append(f'<rect x="{num(box.x)}" y="{num(box.y)}" width="{num(box.w)}" height="{num(box.h)}"'
                         f'{_paint(fill, stroke, stroke_width)}/>')

    def lines(self, segments: Iterable[tuple[float, float, float, float]], colour: str, width: float) -> None:
        """Several straight segments (x1, y1, x2, y2) of one colour as a single path element."""
        data = "".join(f"M{num(x1)} {num(y1)}L{num(x2)} {num(y2)}" for x1, y1, x2, y2 in segments)
        if data:
            self.body.append(f'<path d="{data}" fill="none" stroke="{colour}" stroke-width="{width}"/>')

    def rects(self, boxes: Iterable[Box], fill: str) -> None:
        """Several filled rectangles of one colour (bars) as a single path element."""
        data = "".join(f"M{num(b.x)} {num(b.y)}H{num(b.right)}V{num(b.bottom)}H{num(b.x)}Z" for b in boxes)
        if data:
            self.body.append(f'<path d="{data}" fill="{fill}"/>')

    def polyline(self, points: Sequence[tuple[float, float]], colour: str, width: float) -> None:
        coords = " ".join(f"{num(x)},{num(y)}" for x, y in points)
        self.body.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="{width}" '
                         'stroke-linejoin="round"/>')

    def circle(self, x: float, y: float, r: float, fill: str) -> None:
        self.body.append(f'<circle cx="{num(x)}" cy="{num(y)}" r="{r}" fill="{fill}"/>')

    def path(self, data: str, fill: str, stroke: str | None = None, stroke_width: float = 0,
             extra: str = "") -> None:
        self.body.append(f'<path d="{data}"{_paint(fill, stroke, stroke_width)}{extra}/>')

    def hatch(self, name: str, background: str, colour: str, spacing: float = 6.0, width: float = 0.6) -> str:
        """A pattern of diagonal lines (matplotlib's '////': x + y = 6k) on `background`; returns the fill."""
        pid, s = self.id(name), spacing
        self.defs.append(
            f'<pattern id="{pid}" patternUnits="userSpaceOnUse" width="{s}" height="{s}">'
            f'<rect width="{s}" height="{s}" fill="{background}"/>'
            f'<path d="M0 {s}L{s} 0M{-s / 4} {s / 4}L{s / 4} {-s / 4}M{3 * s / 4} {5 * s / 4}L{5 * s / 4} {3 * s / 4}" '
            f'stroke="{colour}" stroke-width="{width}"/></pattern>'
        )
        return f"url(#{pid})"

    # ---- text
    def text(self, x: float, y: float, content: str, size: float, *, anchor: str = "start",
             valign: str = "baseline", colour: str = "#000000", bold: bool = False, italic: bool = False,
             halo: str | None = None, line_height: float = LINE) -> None:
        """A text at (x, y); `valign` places its top, center, bottom or last baseline there
        (as matplotlib's va); lines are split on newlines."""
        lines = content.split("\n")
        step = size * line_height
        extra = (len(lines) - 1) * step
        first = {
            "top": y + ASCENT * size,
            "center": y + (ASCENT - DESCENT) / 2 * size - extra / 2,
            "bottom": y - DESCENT * size - extra,
        }.get(valign, y - extra)
        attrs = f' font-size="{size}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if colour != "#000000":
            attrs += f' fill="{colour}"'
        if bold:
            attrs += ' font-weight="bold"'
        if italic:
            attrs += ' font-style="italic"'
        if halo:
            attrs += f' stroke="{halo}" stroke-width="2.5" stroke-linejoin="round" paint-order="stroke"'
        for i, line in enumerate(lines):
            self.body.append(f'<text x="{num(x)}" y="{num(first + i * step)}"{attrs}>{xml(line)}</text>')

    # ---- output
    def svg(self, title: str) -> str:
        """The `<svg>` element to inline in a page, titled for screen readers."""
        w, h = num(self.width), num(self.height)
        defs = f"<defs>{''.join(self.defs)}</defs>" if self.defs else ""
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="{self.id("titre")}" '
            f'width="{w}pt" height="{h}pt" viewBox="0 0 {w} {h}" font-family="{FONT}">'
            f'<title id="{self.id("titre")}">{xml(title)}</title>{defs}'
            f'<rect width="{w}" height="{h}" fill="#ffffff"/>'
            + "\n".join(self.body) + "</svg>"
        )


def _paint(fill: str, stroke: str | None, stroke_width: float) -> str:
    out = f' fill="{fill}"'
    if stroke:
        out += f' stroke="{stroke}" stroke-width="{stroke_width}"'
    return out
