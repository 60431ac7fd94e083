"""The charts of the HTML report, drawn with matplotlib and returned as inline SVG.

Per indicator: the trend of the agglomeration and of each RPE (small multiples), the
communes of the last year (horizontal bars), and the choropleth map of the communes for
the last year. Each chart carries its source line. A masked figure is drawn as its symbol
(never as a zero bar or point); a masked commune of the map is hatched grey.

Text stays text in the SVG (`svg.fonttype: none`), so the guard and a screen reader can
read the titles and source lines.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import blended_transform_factory

from pipeline.indicators import Indicator
from pipeline.reports.context import ReportContext, Zone
from pipeline.reports.geo import Geometry
from pipeline.reports.texts import decimals, format_number, source_line

RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "cabbalr-rapport",
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "hatch.linewidth": 0.6,
}
GREY = "#7f7f7f"
DEFAULT_RPE_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


@dataclass(frozen=True)
class Chart:
    kind: str  # tendance | communes | carte
    title: str
    svg: str
    description: str  # alternative text


# ---- SVG output ---------------------------------------------------------------------------------

_ID = re.compile(r'\bid="([^"]+)"')


def to_svg(fig: Figure, prefix: str, title: str) -> str:
    """The figure as an <svg> element to inline in a page: no XML prolog, no metadata,
    element ids prefixed so that several charts can share a page."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buffer.getvalue()
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    ids = set(_ID.findall(svg))
    for old in sorted(ids, key=len, reverse=True):
        new = f"{prefix}-{old}"
        svg = svg.replace(f'id="{old}"', f'id="{new}"')
        svg = svg.replace(f"url(#{old})", f"url(#{new})")
        svg = svg.replace(f'href="#{old}"', f'href="#{new}"')
    svg = _PATH_DATA.sub(_compact_path, svg)
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{prefix}-titre" ', 1)
    svg = re.sub(r"(<svg[^>]*>)", lambda m: m.group(1) + f'<title id="{prefix}-titre">{_xml(title)}</title>', svg,
                 count=1)
    return svg.strip()


_PATH_DATA = re.compile(r'\bd="([^"]*)"')
_NUMBER = re.compile(r"-?\d+\.\d+")


def _compact_path(match: re.Match) -> str:
    """Path data rounded to 0.1 pt (invisible) on one line: maps are 3 times smaller."""
    data = _NUMBER.sub(lambda m: f"{float(m.group(0)):.1f}".rstrip("0").rstrip("."), match.group(1))
    return 'd="' + " ".join(data.split()) + '"'


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100)


def _footer(fig: Figure, context: ReportContext, indicator: Indicator, extra: str = "") -> None:
    s = context.config.symbols
    fig.text(0.01, 0.012, source_line(context, indicator), fontsize=7.5, style="italic", color="#333333",
             ha="left", va="bottom")
    legend = f"« {s.masked} » secret statistique · « {s.not_available} » non disponible"
    fig.text(0.99, 0.012, (extra + " · " if extra else "") + legend, fontsize=7, color=GREY, ha="right",
             va="bottom")


def _fr_formatter(digits: int) -> FuncFormatter:
    return FuncFormatter(lambda v, _pos: format_number(v, digits))


def _rpe_colours(context: ReportContext) -> dict[str, str]:
    palette = list(context.config.colour("rpe", DEFAULT_RPE_COLOURS)) or DEFAULT_RPE_COLOURS
    return {z.code: palette[i % len(palette)] for i, z in enumerate(context.rpes())}


def _wrap(text: str, width: int = 110) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


# ---- trend: the agglomeration and each RPE ----------------------------------------------------


def trend_chart(context: ReportContext, indicator: Indicator, prefix: str) -> Chart:
    zones = [z for z in context.zones() if z.level in ("epci", "rpe")]
    years = list(indicator.years)
    digits = decimals(context, indicator)
    symbols = context.config.symbols
    colours = _rpe_colours(context)
    epci_colour = context.config.colour("epci", "#1f3b63")
    series = {}
    for zone in zones:
        points = [context.cell(indicator.id, zone.code, y) for y in years]
        series[zone.code] = points

    def top(codes):
        values = [p[1] for c in codes for p in series[c] if p and p[0] == "published"]
        return max(values) if values else 0.0

    rpe_codes = [z.code for z in zones if z.level == "rpe"]
    epci_codes = [z.code for z in zones if z.level == "epci"]
    if indicator.kind == "ratio":
        shared = {c: top(rpe_codes + epci_codes) for c in rpe_codes + epci_codes}
    else:
        shared = {**{c: top(rpe_codes) for c in rpe_codes}, **{c: top(epci_codes) for c in epci_codes}}

    ncols = 4
    nrows = max(1, math.ceil(len(zones) / ncols))
    title = f"Évolution {years[0]}–{years[-1]} : agglomération et relais petite enfance" if len(years) > 1 else \
        f"{years[0]} : agglomération et relais petite enfance"
    with matplotlib.rc_context(RC):
        fig = _new_figure(10.5, 2.15 * nrows + 1.0)
        fig.suptitle(_wrap(f"{indicator.label} ({indicator.unit})"), fontsize=9.5, fontweight="bold", x=0.01,
                     ha="left", y=0.995)
        height = 2.15 * nrows + 1.0
        grid = fig.add_gridspec(nrows, ncols, left=0.06, right=0.99, top=1 - 0.62 / height,
                                bottom=0.5 / height, hspace=0.5, wspace=0.28)
        for i, zone in enumerate(zones):
            ax = fig.add_subplot(grid[i // ncols, i % ncols])
            colour = epci_colour if zone.level == "epci" else colours.get(zone.code, GREY)
            values = [p[1] if p and p[0] == "published" else np.nan for p in series[zone.code]]
            ax.plot(years, values, marker="o", markersize=3.5, linewidth=1.6, color=colour)
            upper = shared[zone.code] or 1.0
            ax.set_ylim(0, upper * 1.22)
            ax.set_xlim(years[0] - 0.5, years[-1] + 0.5)
            ax.set_xticks(years)
            ax.set_xticklabels([str(y) for y in years], fontsize=7)
            ax.yaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_major_formatter(_fr_formatter(0 if upper >= 10 else digits))
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
            name = f"Agglomération ({context.territory.epci_short_name})" if zone.level == "epci" else zone.name
            ax.set_title(_wrap(name, 34), loc="left", color=colour)
            below = blended_transform_factory(ax.transData, ax.transAxes)
            for year, point in zip(years, series[zone.code]):
                if point and point[0] == "published":
                    ax.annotate(format_number(point[1], digits), (year, point[1]), textcoords="offset points",
                                xytext=(0, 4), ha="center", fontsize=6.5, color="#333333")
                else:
                    symbol = symbols.masked if point and point[0] == "masked" else symbols.not_available
                    ax.text(year, 0.05, symbol, transform=below, ha="center", va="bottom", fontsize=8,
                            style="italic", color=GREY)
        if len(zones) < nrows * ncols:
            scale = ("Même échelle pour l'agglomération et les RPE." if indicator.kind == "ratio" else
                     f"Même échelle pour les {len(rpe_codes)} RPE ;\nl'agglomération a la sienne.")
            fig.text(0.06 + 0.93 * (len(zones) % ncols) / ncols + 0.02, 0.5 / height + 0.1,
                     f"{scale}\n« {symbols.masked} » : secret statistique\n« {symbols.not_available} » : non disponible\n"
                     "(une valeur masquée n'est pas un zéro)", fontsize=7.5, color="#444444", va="bottom",
                     ha="left", linespacing=1.6)
        _footer(fig, context, indicator)
        svg = to_svg(fig, prefix, f"{indicator.label} – {title}")
    description = f"{title}. Une courbe par zone ; les valeurs sont dans le tableau de données."
    return Chart("tendance", title, svg, description)


# ---- communes of the last year ------------------------------------------------------------------


def commune_rows(context: ReportContext, indicator: Indicator, year: int) -> list[tuple[Zone, tuple | None]]:
    """The communes with their (status, value) for the year: published by decreasing value,
    then masked, then not available (each alphabetical)."""
    rows = [(z, context.cell(indicator.id, z.code, year)) for z in context.zones() if z.level == "commune"]

    def key(item):
        zone, cell = item
        if cell and cell[0] == "published":
            return (0, -cell[1], zone.name)
        return (1 if cell and cell[0] == "masked" else 2, 0, zone.name)

    return sorted(rows, key=key)


def communes_chart(context: ReportContext, indicator: Indicator, year: int, prefix: str) -> Chart:
    """One panel per RPE (same scale), its communes by decreasing value, secrets at the bottom."""
    rows = commune_rows(context, indicator, year)
    digits = decimals(context, indicator)
    symbols = context.config.symbols
    colours = _rpe_colours(context)
    rpes = [z for z in context.rpes() if any(zone.rpe_code == z.code for zone, _ in rows)]
    by_rpe = {z.code: [(zone, cell) for zone, cell in rows if zone.rpe_code == z.code] for z in rpes}
    values = [c[1] for _, c in rows if c and c[0] == "published"]
    top = max(values) if values and max(values) > 0 else 1.0
    ncols = min(3, max(1, len(rpes)))
    nrows = max(1, math.ceil(len(rpes) / ncols))
    row_sizes = [max([len(by_rpe[z.code]) for z in rpes[r * ncols:(r + 1) * ncols]] or [1]) for r in range(nrows)]
    per_bar, head, foot, gap = 0.18, 0.75, 0.45, 0.55
    height = per_bar * sum(row_sizes) + head + foot + gap * nrows
    title = f"Les communes en {year}, par RPE"
    with matplotlib.rc_context(RC):
        fig = _new_figure(10.5, height)
        fig.text(0.01, 1 - 0.06 / height, _wrap(f"{indicator.label} ({indicator.unit}) – communes, {year}"),
                 fontsize=9.5, fontweight="bold", ha="left", va="top")
        grid = fig.add_gridspec(nrows, ncols, left=0.135, right=0.985, top=1 - head / height,
                                bottom=foot / height, height_ratios=row_sizes,
                                hspace=gap * nrows / max(1e-9, per_bar * sum(row_sizes)), wspace=0.62)
        for i, rpe in enumerate(rpes):
            ax = fig.add_subplot(grid[i // ncols, i % ncols])
            items = by_rpe[rpe.code]
            size = row_sizes[i // ncols]
            positions = np.arange(size)[::-1][: len(items)]
            shown = [(pos, zone, cell) for pos, (zone, cell) in zip(positions, items)]
            pub = [(pos, cell[1]) for pos, _, cell in shown if cell and cell[0] == "published"]
            colour = colours.get(rpe.code, GREY)
            if pub:
                ax.barh([p for p, _ in pub], [v for _, v in pub], color=colour, height=0.72)
            for pos, zone, cell in shown:
                if cell and cell[0] == "published":
                    ax.text(cell[1] + top * 0.012, pos, format_number(cell[1], digits), va="center", fontsize=6.5,
                            color="#333333")
                else:
                    symbol = symbols.masked if cell and cell[0] == "masked" else symbols.not_available
                    ax.text(top * 0.012, pos, symbol, va="center", fontsize=7.5, style="italic", color=GREY)
            ax.set_yticks(positions)
            ax.set_yticklabels([zone.name for _, zone, _ in shown], fontsize=7)
            ax.set_ylim(-0.6, size - 0.4)
            ax.set_xlim(0, top * 1.2)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.xaxis.set_major_formatter(_fr_formatter(0 if top >= 10 else digits))
            ax.tick_params(axis="x", labelsize=6.5)
            ax.tick_params(axis="y", length=0)
            ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.set_title(rpe.name, loc="left", color=colour)
        _footer(fig, context, indicator, "même échelle pour tous les RPE")
        svg = to_svg(fig, prefix, f"{indicator.label} – {title}")
    description = (f"{title} : un panneau par RPE, communes par valeur décroissante ; secret statistique et "
                   "valeurs non disponibles en bas de chaque panneau.")
    return Chart("communes", title, svg, description)


# ---- the map -------------------------------------------------------------------------------------


def _compound_path(polygons) -> MplPath:
    vertices, codes = [], []
    for poly in polygons:
        for ring in poly:
            vertices.extend(ring.tolist())
            codes.extend([MplPath.MOVETO] + [MplPath.LINETO] * (len(ring) - 2) + [MplPath.CLOSEPOLY])
    return MplPath(np.asarray(vertices), codes)


def map_classes(values: list[float], n_classes: int) -> list[float]:
    """Class limits (k+1 increasing numbers) from the quantiles of the values."""
    if not values:
        return []
    arr = np.asarray(sorted(values), dtype=float)
    k = max(1, min(n_classes, len(np.unique(arr))))
    limits = list(np.quantile(arr, np.linspace(0, 1, k + 1)))
    out = [limits[0]]
    for v in limits[1:]:
        if v > out[-1]:
            out.append(v)
    if len(out) == 1:
        out.append(out[0])
    return out


def class_of(value: float, limits: list[float]) -> int:
    inner = limits[1:-1]
    return int(np.searchsorted(inner, value, side="left"))


def map_chart(context: ReportContext, indicator: Indicator, year: int, geometry: Geometry, prefix: str) -> Chart:
    digits = decimals(context, indicator)
    symbols = context.config.symbols
    cells = {z.code: context.cell(indicator.id, z.code, year) for z in context.zones() if z.level == "commune"}
    values = [c[1] for c in cells.values() if c and c[0] == "published"]
    limits = map_classes(values, int(context.config.colour("map_classes", 5)))
    n_classes = max(1, len(limits) - 1)
    cmap = matplotlib.colormaps.get_cmap(str(context.config.colour("map_palette", "YlGnBu")))
    class_colours = [cmap(0.15 + 0.8 * i / max(1, n_classes - 1)) for i in range(n_classes)]
    masked_colour = context.config.colour("masked", "#bdbdbd")
    na_colour = context.config.colour("not_available", "#f0f0f0")
    title = f"Carte des communes en {year}"
    xmin, ymin, xmax, ymax = geometry.bounds()
    aspect = 1 / math.cos(math.radians((ymin + ymax) / 2))
    width, map_width, head, foot = 10.5, 7.3, 0.6, 0.45
    map_height = map_width * (ymax - ymin) * 1.04 * aspect / max(1e-9, (xmax - xmin) * 1.04)
    height = max(4.5, map_height + head + foot)
    with matplotlib.rc_context(RC):
        fig = _new_figure(width, height)
        fig.text(0.01, 1 - 0.06 / height, _wrap(f"{indicator.label} ({indicator.unit}) – communes, {year}"),
                 fontsize=9.5, fontweight="bold", ha="left", va="top")
        ax = fig.add_axes([0.01, foot / height, map_width / width, 1 - (head + foot) / height])
        for code, polygons in geometry.shapes.items():
            cell = cells.get(code)
            path = _compound_path(polygons)
            if cell and cell[0] == "published":
                face = class_colours[min(class_of(cell[1], limits), n_classes - 1)]
                patch = PathPatch(path, facecolor=face, edgecolor="white", linewidth=0.4)
            elif cell and cell[0] == "masked":
                patch = PathPatch(path, facecolor=masked_colour, edgecolor="#6e6e6e", linewidth=0.3, hatch="////")
            else:
                patch = PathPatch(path, facecolor=na_colour, edgecolor="#9e9e9e", linewidth=0.3)
            ax.add_patch(patch)
        lines = []
        for rpe in context.rpes():
            lines += geometry.boundary_lines([z.code for z in context.communes_of(rpe.code)])
        if lines:
            ax.add_collection(LineCollection(lines, colors="#222222", linewidths=1.0))
        for rpe in context.rpes():
            centres = [np.concatenate([p[0] for p in geometry.shapes[z.code]]).mean(axis=0)
                       for z in context.communes_of(rpe.code) if z.code in geometry.shapes]
            if centres:
                x, y = np.mean(centres, axis=0)
                ax.text(x, y, rpe.name, fontsize=7.5, ha="center", va="center",
                        color="#111111", fontweight="bold",
                        path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])
        pad_x, pad_y = (xmax - xmin) * 0.02, (ymax - ymin) * 0.02
        ax.set_xlim(xmin - pad_x, xmax + pad_x)
        ax.set_ylim(ymin - pad_y, ymax + pad_y)
        ax.set_aspect(aspect)
        ax.set_axis_off()
        handles = []
        members: dict[int, list[float]] = {}
        for value in values:
            members.setdefault(min(class_of(value, limits), n_classes - 1), []).append(value)
        for i in sorted(members):  # each class labelled by the smallest and largest value it holds
            low, high = min(members[i]), max(members[i])
            label = f"de {format_number(low, digits)} à {format_number(high, digits)}" if high > low \
                else format_number(low, digits)
            handles.append(Patch(facecolor=class_colours[i], edgecolor="#9e9e9e", linewidth=0.3, label=label))
        handles.append(Patch(facecolor=masked_colour, edgecolor="#6e6e6e", hatch="////", linewidth=0.3,
                             label=f"« {symbols.masked} » secret statistique"))
        handles.append(Patch(facecolor=na_colour, edgecolor="#9e9e9e", linewidth=0.3,
                             label=f"« {symbols.not_available} » non disponible"))
        handles.append(Patch(facecolor="none", edgecolor="#222222", linewidth=0.9, label="limite de RPE"))
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=((map_width + 0.35) / width, 1 - head / height),
                   fontsize=8, frameon=False, title=_wrap(f"{indicator.unit} en {year}", 30), title_fontsize=8.5,
                   alignment="left")
        missing = [c for c in cells if c not in geometry.shapes]
        extra = f"{len(missing)} commune(s) sans contour" if missing else ""
        _footer(fig, context, indicator, extra)
        svg = to_svg(fig, prefix, f"{indicator.label} – {title}")
    description = (f"{title} : {n_classes} classe(s) de valeurs (quantiles) ; communes sous secret hachurées "
                   "en gris ; limites des RPE en trait noir.")
    return Chart("carte", title, svg, description)
