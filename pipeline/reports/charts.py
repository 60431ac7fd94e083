"""The charts of the HTML report, written as inline SVG (`pipeline.reports.svg`).

Per indicator: the trend of the agglomeration and of each RPE (small multiples), the
communes of the last year (horizontal bars, one panel per RPE), and the choropleth map of
the communes for the last year. Each chart carries its source line. A masked figure is
drawn as its symbol (never as a zero bar or point); a masked commune of the map is hatched
grey.

What belongs here: what each chart shows and where (layout in points, the figures 10.5
inches wide as the former matplotlib charts were). How an SVG element is written is
`svg.py`; reading the outlines is `geo.py`. The map's projection, the communes' outlines
and the RPE borders do not depend on the indicator: `map_base` computes them once per page
and the twelve maps reuse them, only their colours differ.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import numpy as np

from pipeline.indicators import Indicator
from pipeline.reports.context import ReportContext, Zone
from pipeline.reports.geo import Geometry
from pipeline.reports.svg import INCH, Box, Canvas, css_colour, grid, nice_ticks, palette, path_data
from pipeline.reports.texts import decimals, format_number, source_line

WIDTH = 10.5 * INCH
GREY = "#7f7f7f"
GRID = "#e5e5e5"
AXIS = "#000000"
TICK, PAD = 3.5, 3.5  # tick length and label padding (points)
DEFAULT_RPE_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


@dataclass(frozen=True)
class Chart:
    kind: str  # tendance | communes | carte
    title: str
    svg: str
    description: str  # alternative text


# ---- shared pieces ----------------------------------------------------------------------------


def _wrap(text: str, width: int = 110) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _footer(canvas: Canvas, context: ReportContext, indicator: Indicator, extra: str = "") -> None:
    """The source line (bottom left) and the symbols (bottom right)."""
    s = context.config.symbols
    y = canvas.height * (1 - 0.012)
    canvas.text(0.01 * WIDTH, y, source_line(context, indicator), 7.5, italic=True, colour="#333333",
                valign="bottom")
    legend = f"« {s.masked} » secret statistique · « {s.not_available} » non disponible"
    canvas.text(0.99 * WIDTH, y, (extra + " · " if extra else "") + legend, 7, colour=GREY, anchor="end",
                valign="bottom")


def _rpe_colours(context: ReportContext) -> dict[str, str]:
    chosen = list(context.config.colour("rpe", DEFAULT_RPE_COLOURS)) or DEFAULT_RPE_COLOURS
    colours = [css_colour(c) for c in chosen]
    return {z.code: colours[i % len(colours)] for i, z in enumerate(context.rpes())}


def _grid_lines(canvas: Canvas, box: Box, xs: list[float] = (), ys: list[float] = ()) -> None:
    canvas.lines([(x, box.y, x, box.bottom) for x in xs] + [(box.x, y, box.right, y) for y in ys], GRID, 0.6)


def _axes(canvas: Canvas, box: Box, xticks: list[tuple[float, str]], yticks: list[tuple[float, str]],
          x_size: float, y_size: float, y_tick: float = TICK) -> None:
    """Left and bottom spines, ticks pointing out, their labels."""
    marks = [(box.x, box.y, box.x, box.bottom), (box.x, box.bottom, box.right, box.bottom)]
    marks += [(x, box.bottom, x, box.bottom + TICK) for x, _ in xticks]
    if y_tick:
        marks += [(box.x - y_tick, y, box.x, y) for y, _ in yticks]
    canvas.lines(marks, AXIS, 0.8)
    for x, label in xticks:
        canvas.text(x, box.bottom + TICK + PAD, label, x_size, anchor="middle", valign="top")
    for y, label in yticks:
        canvas.text(box.x - y_tick - PAD, y, label, y_size, anchor="end", valign="center")


def _panel_title(canvas: Canvas, box: Box, title: str, colour: str) -> None:
    canvas.text(box.x, box.y - 6, title, 9, colour=colour, bold=True)


# ---- trend: the agglomeration and each RPE ----------------------------------------------------


def trend_chart(context: ReportContext, indicator: Indicator, prefix: str) -> Chart:
    zones = [z for z in context.zones() if z.level in ("epci", "rpe")]
    years = context.indicator_years(indicator)  # a year whose files never came has nothing to draw
    symbols = context.config.symbols
    colours = _rpe_colours(context)
    epci_colour = css_colour(context.config.colour("epci", "#1f3b63"))
    series = {zone.code: [context.cell(indicator.id, zone.code, y) for y in years] for zone in zones}

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
    height = (2.15 * nrows + 1.0) * INCH
    canvas = Canvas(WIDTH, height, prefix)
    canvas.text(0.01 * WIDTH, 0.005 * height, _wrap(f"{indicator.label} ({indicator.unit})"), 9.5, bold=True,
                valign="top")
    area = Box(0.06 * WIDTH, 0.62 * INCH, 0.93 * WIDTH, height - 0.62 * INCH - 0.5 * INCH)
    names = {z.code: f"Agglomération ({context.territory.epci_short_name})" if z.level == "epci" else z.name
             for z in zones}
    panel_colours = {z.code: epci_colour if z.level == "epci" else colours.get(z.code, GREY) for z in zones}
    _panels(canvas, context, indicator, zones, area, nrows, ncols, years, series, shared, panel_colours, names)
    if len(zones) < nrows * ncols:
        x = area.x + area.w * (len(zones) % ncols) / ncols + 0.02 * WIDTH
        width = max(12, int((WIDTH - x) / (0.6 * 7.5)))  # characters that fit before the right edge
        scale = ("Même échelle pour l'agglomération et les RPE." if indicator.kind == "ratio" else
                 f"Même échelle pour les {len(rpe_codes)} RPE ; l'agglomération a la sienne.")
        # every phrase wrapped to the room left of the last row: a line longer than that ran off
        # the picture's right edge ("… ne pas la compter comme")
        phrases = [scale, f"« {symbols.masked} » : secret statistique", f"« {symbols.not_available} » : non disponible",
                   "(valeur masquée : ne pas la compter comme zéro)"]
        lines = [line for phrase in phrases for line in textwrap.wrap(phrase, width)]
        canvas.text(x, height - 0.5 * INCH - 0.1 * height, "\n".join(lines), 7.5, colour="#444444",
                    valign="bottom", line_height=1.6)
    _footer(canvas, context, indicator)
    description = f"{title}. Une courbe par zone ; les valeurs sont dans le tableau de données."
    return Chart("tendance", title, canvas.svg(f"{indicator.label} – {title}"), description)


def _panels(canvas: Canvas, context: ReportContext, indicator: Indicator, zones: list[Zone], area: Box, nrows: int,
            ncols: int, years: list[int], series: dict, shared: dict, panel_colours: dict, names: dict) -> None:
    """One small panel per zone: its figures over the years (published points joined by a
    line, a masked or unavailable year drawn as its symbol, never as a zero)."""
    digits = decimals(context, indicator)
    symbols = context.config.symbols
    cells = grid(area, nrows, ncols, wspace=0.28, hspace=0.5)
    x_low, x_span = years[0] - 0.5, years[-1] - years[0] + 1.0
    for zone, box in zip(zones, cells):
        colour = panel_colours[zone.code]
        limit = shared[zone.code] or 1.0
        upper = limit * 1.22
        tick_digits = 0 if limit >= 10 else digits

        def px(year, box=box):
            return box.x + (year - x_low) / x_span * box.w

        def py(value, box=box, upper=upper):
            return box.bottom - value / upper * box.h

        yticks = [(py(v), format_number(v, tick_digits)) for v in nice_ticks(upper)]
        _grid_lines(canvas, box, ys=[y for y, _ in yticks])
        points = [(px(y), py(p[1])) if p and p[0] == "published" else None for y, p in zip(years, series[zone.code])]
        run: list[tuple[float, float]] = []
        for point in [*points, None]:  # a line through consecutive published years only
            if point is not None:
                run.append(point)
                continue
            if len(run) > 1:
                canvas.polyline(run, colour, 1.6)
            run = []
        for point in points:
            if point is not None:
                canvas.circle(*point, 2.25, colour)
        _axes(canvas, box, [(px(y), str(y)) for y in years], yticks, 7, 7)
        _panel_title(canvas, box, _wrap(names[zone.code], 34), colour)
        for year, point, cell in zip(years, points, series[zone.code]):
            if point is not None:
                canvas.text(point[0], point[1] - 4, format_number(cell[1], digits), 6.5, anchor="middle",
                            colour="#333333")
            else:
                symbol = symbols.masked if cell and cell[0] == "masked" else symbols.not_available
                canvas.text(px(year), box.bottom - 0.05 * box.h, symbol, 8, anchor="middle", valign="bottom",
                            italic=True, colour=GREY)


# ---- the IRIS of a commune ----------------------------------------------------------------------


def iris_chart(context: ReportContext, indicator: Indicator, commune: Zone, prefix: str) -> Chart:
    """The commune and each of its IRIS over the years (one panel each; the IRIS on one
    scale, the commune on its own)."""
    iris = context.iris_of(commune.code)
    zones = [commune, *iris]
    years = context.iris_years(indicator) or list(indicator.years)
    series = {z.code: [context.cell(indicator.id, z.code, y) for y in years] for z in zones}

    def top(codes):
        values = [p[1] for c in codes for p in series[c] if p and p[0] == "published"]
        return max(values) if values else 0.0

    iris_codes = [z.code for z in iris]
    shared = {**{c: top(iris_codes) for c in iris_codes}, commune.code: top([commune.code])}
    colour = css_colour(context.config.colour("epci", "#1f3b63"))
    ncols = 4
    nrows = max(1, math.ceil(len(zones) / ncols))
    title = (f"{commune.name} : ses {len(iris)} IRIS, {years[0]}–{years[-1]}" if len(years) > 1
             else f"{commune.name} : ses {len(iris)} IRIS, {years[0]}")
    height = (2.15 * nrows + 1.0) * INCH
    canvas = Canvas(WIDTH, height, prefix)
    canvas.text(0.01 * WIDTH, 0.005 * height, _wrap(f"{indicator.label} ({indicator.unit}) – {title}"), 9.5,
                bold=True, valign="top")
    area = Box(0.06 * WIDTH, 0.62 * INCH, 0.93 * WIDTH, height - 0.62 * INCH - 0.5 * INCH)
    names = {commune.code: f"{commune.name} (commune)", **{z.code: f"{z.name} ({z.code})" for z in iris}}
    _panels(canvas, context, indicator, zones, area, nrows, ncols, years, series, shared,
            {z.code: colour if z.level == "commune" else GREY for z in zones}, names)
    _footer(canvas, context, indicator,
            f"IRIS de moins de {context.policy.minimum_allocataires} allocataires : secret statistique")
    description = f"{title}. Un graphique par IRIS ; les valeurs sont dans le tableau de données."
    return Chart(f"iris-{commune.code}", title, canvas.svg(f"{indicator.label} – {title}"), description)

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
    per_bar, head, foot, gap = 0.18 * INCH, 0.75 * INCH, 0.45 * INCH, 0.55 * INCH
    height = per_bar * sum(row_sizes) + head + foot + gap * nrows
    title = f"Les communes en {year}, par RPE"
    canvas = Canvas(WIDTH, height, prefix)
    canvas.text(0.01 * WIDTH, 0.06 * INCH, _wrap(f"{indicator.label} ({indicator.unit}) – communes, {year}"), 9.5,
                bold=True, valign="top")
    area = Box(0.135 * WIDTH, head, 0.85 * WIDTH, height - head - foot)
    cells = grid(area, nrows, ncols, wspace=0.62, hspace=gap * nrows / max(1e-9, per_bar * sum(row_sizes)),
                 height_ratios=row_sizes)
    x_upper = top * 1.2
    xtick_values = nice_ticks(x_upper)
    tick_digits = 0 if top >= 10 else digits
    for i, rpe in enumerate(rpes):
        box = cells[i]
        size = row_sizes[i // ncols]
        colour = colours.get(rpe.code, GREY)

        def px(value, box=box):
            return box.x + value / x_upper * box.w

        def py(position, box=box, size=size):
            return box.y + (size - 0.4 - position) / size * box.h

        xticks = [(px(v), format_number(v, tick_digits)) for v in xtick_values]
        _grid_lines(canvas, box, xs=[x for x, _ in xticks])
        shown = list(zip(range(size - 1, -1, -1), by_rpe[rpe.code]))  # first commune on top
        bar = 0.72 / size * box.h
        canvas.rects([Box(box.x, py(position) - bar / 2, px(cell[1]) - box.x, bar)
                      for position, (zone, cell) in shown if cell and cell[0] == "published"], colour)
        _axes(canvas, box, xticks, [(py(pos), zone.name) for pos, (zone, _) in shown], 6.5, 7, y_tick=0)
        for position, (_zone, cell) in shown:
            if cell and cell[0] == "published":
                canvas.text(px(cell[1] + top * 0.012), py(position), format_number(cell[1], digits), 6.5,
                            valign="center", colour="#333333")
            else:
                symbol = symbols.masked if cell and cell[0] == "masked" else symbols.not_available
                canvas.text(px(top * 0.012), py(position), symbol, 7.5, valign="center", italic=True, colour=GREY)
        _panel_title(canvas, box, rpe.name, colour)
    _footer(canvas, context, indicator, "même échelle pour tous les RPE")
    description = (f"{title} : un panneau par RPE, communes par valeur décroissante ; secret statistique et "
                   "valeurs non disponibles en bas de chaque panneau.")
    return Chart("communes", title, canvas.svg(f"{indicator.label} – {title}"), description)


# ---- the map -------------------------------------------------------------------------------------

MAP_WIDTH, MAP_HEAD, MAP_FOOT = 7.3 * INCH, 0.6 * INCH, 0.45 * INCH


@dataclass(frozen=True)
class MapBase:
    """What the maps of a page share, computed once from the outlines (`map_base`): the
    image's height, each commune's outline as SVG path data in the image's points, the RPE
    borders, where the RPE names go, and the communes of the report without outline."""

    height: float
    outlines: dict[str, str]  # commune code -> path data, in the file's order
    borders: str  # path data of the outer border of every RPE
    labels: list[tuple[str, float, float]]  # RPE name, x, y
    missing: list[str]


def map_base(context: ReportContext, geometry: Geometry) -> MapBase:
    """Project the outlines once (longitude and latitude scaled by the cosine of the mean
    latitude, as the former matplotlib map with its aspect), centred in the map's area."""
    xmin, ymin, xmax, ymax = geometry.bounds()
    aspect = 1 / math.cos(math.radians((ymin + ymax) / 2))
    map_height = MAP_WIDTH * (ymax - ymin) * aspect / max(1e-9, xmax - xmin)
    height = max(4.5 * INCH, map_height + MAP_HEAD + MAP_FOOT)
    area = Box(0.01 * WIDTH, MAP_HEAD, MAP_WIDTH, height - MAP_HEAD - MAP_FOOT)
    pad_x, pad_y = (xmax - xmin) * 0.02, (ymax - ymin) * 0.02
    x0, x1, y0, y1 = xmin - pad_x, xmax + pad_x, ymin - pad_y, ymax + pad_y
    scale = min(area.w / max(1e-9, x1 - x0), area.h / max(1e-9, (y1 - y0) * aspect))
    left = area.x + (area.w - (x1 - x0) * scale) / 2
    top = area.y + (area.h - (y1 - y0) * aspect * scale) / 2

    def project(points: np.ndarray) -> list[tuple[float, float]]:
        points = np.asarray(points, dtype=float)
        xs = left + (points[:, 0] - x0) * scale
        ys = top + (y1 - points[:, 1]) * aspect * scale
        return list(zip(xs.tolist(), ys.tolist()))

    outlines = {code: path_data(project(ring) for poly in polygons for ring in poly)
                for code, polygons in geometry.shapes.items()}
    borders, labels = [], []
    for rpe in context.rpes():
        codes = [z.code for z in context.communes_of(rpe.code)]
        borders.append(path_data((project(line) for line in geometry.boundary_lines(codes)), close=False))
        centres = [np.concatenate([p[0] for p in geometry.shapes[code]]).mean(axis=0)
                   for code in codes if code in geometry.shapes]
        if centres:
            (x, y), = project(np.mean(centres, axis=0)[None, :])
            labels.append((rpe.name, x, y))
    missing = [z.code for z in context.zones() if z.level == "commune" and z.code not in geometry.shapes]
    return MapBase(height=height, outlines=outlines, borders="".join(borders), labels=labels, missing=missing)


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


def map_chart(context: ReportContext, indicator: Indicator, year: int, base: MapBase, prefix: str) -> Chart:
    """The communes of `year` in classes of values on the outlines of `base` (see map_base)."""
    digits = decimals(context, indicator)
    symbols = context.config.symbols
    cells = {z.code: context.cell(indicator.id, z.code, year) for z in context.zones() if z.level == "commune"}
    values = [c[1] for c in cells.values() if c and c[0] == "published"]
    limits = map_classes(values, int(context.config.colour("map_classes", 5)))
    n_classes = max(1, len(limits) - 1)
    class_colours = palette(str(context.config.colour("map_palette", "YlGnBu")),
                            [0.15 + 0.8 * i / max(1, n_classes - 1) for i in range(n_classes)])
    masked_colour = css_colour(context.config.colour("masked", "#bdbdbd"))
    na_colour = css_colour(context.config.colour("not_available", "#f0f0f0"))
    title = f"Carte des communes en {year}"
    canvas = Canvas(WIDTH, base.height, prefix)
    hatched = canvas.hatch("hachures", masked_colour, "#6e6e6e")
    canvas.text(0.01 * WIDTH, 0.06 * INCH, _wrap(f"{indicator.label} ({indicator.unit}) – communes, {year}"), 9.5,
                bold=True, valign="top")
    for code, outline in base.outlines.items():
        cell = cells.get(code)
        if cell and cell[0] == "published":
            face = class_colours[min(class_of(cell[1], limits), n_classes - 1)]
            canvas.path(outline, face, "#ffffff", 0.4, ' fill-rule="evenodd"')
        elif cell and cell[0] == "masked":
            canvas.path(outline, hatched, "#6e6e6e", 0.3, ' fill-rule="evenodd"')
        else:
            canvas.path(outline, na_colour, "#9e9e9e", 0.3, ' fill-rule="evenodd"')
    if base.borders:
        canvas.path(base.borders, "none", "#222222", 1.0, ' stroke-linejoin="round"')
    for name, x, y in base.labels:
        canvas.text(x, y, name, 7.5, anchor="middle", valign="center", colour="#111111", bold=True, halo="#ffffff")

    # the legend, right of the map: each class labelled by the smallest and largest value it holds
    members: dict[int, list[float]] = {}
    for value in values:
        members.setdefault(min(class_of(value, limits), n_classes - 1), []).append(value)
    entries = []
    for i in sorted(members):
        low, high = min(members[i]), max(members[i])
        label = f"de {format_number(low, digits)} à {format_number(high, digits)}" if high > low \
            else format_number(low, digits)
        entries.append((label, class_colours[i], "#9e9e9e", 0.3))
    entries += [(f"« {symbols.masked} » secret statistique", hatched, "#6e6e6e", 0.3),
                (f"« {symbols.not_available} » non disponible", na_colour, "#9e9e9e", 0.3),
                ("limite de RPE", "none", "#222222", 0.9)]
    x = MAP_WIDTH + 0.35 * INCH + 6
    heading = _wrap(f"{indicator.unit} en {year}", 30)
    canvas.text(x, MAP_HEAD + 5, heading, 8.5, valign="top")
    y = MAP_HEAD + 13 + 8.5 * 1.2 * len(heading.split("\n"))
    for label, fill, stroke, width in entries:
        canvas.rect(Box(x, y - 2.8, 16, 5.6), fill, stroke, width)
        canvas.text(x + 22.4, y, label, 8, valign="center")
        y += 12.3
    extra = f"{len(base.missing)} commune(s) sans contour" if base.missing else ""
    _footer(canvas, context, indicator, extra)
    description = (f"{title} : {n_classes} classe(s) de valeurs (quantiles) ; communes sous secret hachurées "
                   "en gris ; limites des RPE en trait noir.")
    return Chart("carte", title, canvas.svg(f"{indicator.label} – {title}"), description)
