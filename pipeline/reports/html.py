"""The page for the committees: `reports/rapport_petite_enfance.html`.

One self-contained file (inline CSS and SVG, no script, no external resource; a Content
Security Policy forbids any network access when it is opened). Per indicator: the trend
of the agglomeration and of each RPE, the communes of the last year, and the map of the
communes; each chart with its source line and, folded under it, the table of the figures
it draws. The tables carry the exact values (`data-valeur`) and statuses (`data-statut`)
the guard compares with `published.indicators`.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from pipeline.indicators import Indicator
from pipeline.reports.charts import (
    Chart,
    MapBase,
    commune_rows,
    communes_chart,
    iris_chart,
    map_base,
    map_chart,
    trend_chart,
)
from pipeline.reports.context import ReportContext, Zone
from pipeline.reports.geo import Geometry
from pipeline.reports.texts import (
    KIND_NAMES,
    LEVEL_NAMES,
    aggregation_rules,
    data_date_text,
    decimals,
    format_date,
    format_number,
    formula_text,
    iris_source_line,
    note_text,
    period_text,
    producer_text,
    secrecy_rules,
    sentence,
    source_line,
    symbol_legend,
    usage_rules,
    year_span,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { --bleu: #1f3b63; --gris: #6b6b6b; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Segoe UI", Arial, sans-serif; color: #1a1a1a; margin: 0;
       line-height: 1.45; background: #f7f8fa; }
header.bandeau { background: var(--bleu); color: white; padding: 1.2rem 2rem; }
header.bandeau .sigle { font-weight: bold; letter-spacing: .04em; font-size: 1.05rem; }
header.bandeau h1 { margin: .3rem 0 .2rem; font-size: 1.7rem; }
header.bandeau p { margin: .2rem 0; }
main { max-width: 1180px; margin: 0 auto; padding: 1rem 2rem 3rem; }
section { background: white; border: 1px solid #e1e4ea; border-radius: 6px; padding: 1rem 1.4rem;
          margin: 1.4rem 0; }
h2 { color: var(--bleu); font-size: 1.3rem; margin: .2rem 0 .6rem; }
h3 { color: var(--bleu); font-size: 1.05rem; }
dl.faits { display: grid; grid-template-columns: 15rem 1fr; gap: .25rem 1rem; margin: .5rem 0; }
dl.faits dt { font-weight: bold; }
dl.faits dd { margin: 0; }
.source { font-style: italic; color: #333; font-size: .9rem; margin: .3rem 0; }
.symbole { font-style: italic; color: var(--gris); font-weight: bold; }
.fiche { color: var(--gris); font-size: .92rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4rem .8rem; font-size: .92rem; }
figure.graphique { margin: .8rem 0; padding: .6rem; border: 1px solid #eceef2; border-radius: 4px;
                   background: white; }
figure.graphique figcaption { font-weight: bold; color: var(--bleu); margin-bottom: .3rem; }
figure.graphique .image svg { width: 100%; height: auto; display: block; }
figure.graphique .carte-absente { padding: 2rem 1rem; text-align: center; color: var(--gris);
                                  border: 1px dashed #c8ccd4; }
details { margin-top: .4rem; font-size: .85rem; }
details summary { cursor: pointer; color: var(--bleu); }
table { border-collapse: collapse; margin: .4rem 0; font-size: .85rem; }
th, td { border: 1px solid #d9dde4; padding: .15rem .5rem; }
th { background: #eef1f6; text-align: left; }
td.nombre { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.symbole { text-align: center; background: #f4f4f4; }
tr.epci td, tr.rpe td { font-weight: bold; }
nav ol { columns: 2; }
footer { text-align: center; color: var(--gris); font-size: .85rem; padding: 1rem; }
@media (max-width: 900px) { dl.faits { grid-template-columns: 1fr; } }
""" + (  # the print rule in two pieces of one line (the page's bytes as before)
    "@media print { body { background: white; } section { break-inside: avoid-page; border: none; } "
    "details { display: none; } }\n")


def _e(text: object) -> str:
    return escape("" if text is None else str(text), quote=True)


def _figure_cell(context: ReportContext, indicator: Indicator, code: str, year: int, digits: int) -> str:
    symbols = context.config.symbols
    cell = context.cell(indicator.id, code, year)
    if cell is None:  # no row in published.indicators
        symbol = symbols.not_available if year in indicator.all_years else symbols.out_of_period
        return f'<td class="symbole" data-annee="{year}" data-statut="absent">{_e(symbol)}</td>'
    status, value = cell
    if status == "published":
        return (f'<td class="nombre" data-annee="{year}" data-statut="published" data-valeur="{value!r}">'
                f"{_e(format_number(value, digits))}</td>")
    symbol = symbols.masked if status == "masked" else symbols.not_available
    meaning = "secret statistique" if status == "masked" else "non disponible"
    return f'<td class="symbole" data-annee="{year}" data-statut="{status}" title="{meaning}">{_e(symbol)}</td>'


def _data_table(context: ReportContext, indicator: Indicator, zones: list[Zone], years: list[int],
                caption: str) -> str:
    digits = decimals(context, indicator)
    head = "".join(f"<th>{y}</th>" for y in years)
    rows = []
    for zone in zones:
        cells = "".join(_figure_cell(context, indicator, zone.code, y, digits) for y in years)
        rpe = context.rpe_name(zone.rpe_code) if zone.level in ("commune", "iris") else ""
        rows.append(
            f'<tr class="{zone.level}" data-code="{_e(zone.code)}" data-niveau="{zone.level}">'
            f"<td>{_e(zone.name)}</td><td>{_e(LEVEL_NAMES.get(zone.level, zone.level))}</td><td>{_e(rpe)}</td>"
            f"{cells}</tr>"
        )
    return (
        f'<details><summary>Données du graphique ({_e(caption)})</summary>'
        f'<table class="donnees" data-indicateur="{_e(indicator.id)}">'
        f"<thead><tr><th>Zone</th><th>Niveau</th><th>RPE</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def _figure(indicator: Indicator, chart_kind: str, title: str, body: str, source: str, table: str = "") -> str:
    return (
        f'<figure class="graphique" id="{_e(indicator.id)}-{chart_kind}" data-indicateur="{_e(indicator.id)}" '
        f'data-graphique="{chart_kind}"><figcaption>{_e(title)}</figcaption>'
        f'<div class="image">{body}</div><p class="source">{_e(source)}</p>{table}</figure>'
    )


def _chart_body(chart: Chart) -> str:
    return f'<div role="group" aria-label="{_e(chart.description)}">{chart.svg}</div>'


def _indicator_section(context: ReportContext, indicator: Indicator, geometry: Geometry, base: MapBase | None,
                       number: int) -> str:
    source = source_line(context, indicator)
    prefix = f"g{number:02d}"
    parts = _communal_parts(context, indicator, geometry, base, prefix, source) if indicator.communal else []
    if indicator in context.iris_indicators():
        years = context.iris_years(indicator)
        for n, commune in enumerate(context.communes_with_iris(), start=1):
            chart = iris_chart(context, indicator, commune, f"{prefix}i{n:02d}")
            zones = [commune, *context.iris_of(commune.code)]
            parts.append(_figure(indicator, chart.kind, chart.title, _chart_body(chart),
                                 iris_source_line(context, indicator),
                                 _data_table(context, indicator, zones, years, f"{commune.name} et ses IRIS")))
    note = note_text(context, indicator)
    facts = (
        f'<p class="fiche">Unité : {_e(indicator.unit)} · {_e(KIND_NAMES[indicator.kind])} · années '
        f"{_e(year_span(context.indicator_years(indicator)))} · producteur : "
        f"{_e(producer_text(context, indicator))}</p>"
        + (f'<p class="note manquant">Années sans données : {_e(context.missing_text([indicator]))} non reçu(s) ; '
           f"leurs cellules sont « {_e(context.config.symbols.not_available)} » et les graphiques ne les "
           "montrent pas.</p>" if context.missing_years(indicator) else "")
        + f'<p class="fiche">Calcul : {_e(formula_text(context, indicator))}</p>'
        + (f'<p class="note">{_e(note)}</p>' if note else "")
        + f'<p class="source">{_e(source)}</p>'
    )
    return (
        f'<section class="indicateur" id="{_e(indicator.id)}" data-indicateur="{_e(indicator.id)}">'
        f"<h2>{number}. {_e(indicator.label)}</h2>{facts}{''.join(parts)}</section>"
    )


def _communal_parts(context: ReportContext, indicator: Indicator, geometry: Geometry, base: MapBase | None,
                    prefix: str, source: str) -> list[str]:
    """The trend of the EPCI and RPE, the communes' bars and their map."""
    year = context.last_year(indicator)
    trend = trend_chart(context, indicator, f"{prefix}t")
    bars = communes_chart(context, indicator, year, f"{prefix}c")
    upper_zones = [z for z in context.zones() if z.level in ("epci", "rpe")]
    communes = [zone for zone, _ in commune_rows(context, indicator, year)]
    parts = [
        _figure(indicator, "tendance", trend.title, _chart_body(trend), source,
                _data_table(context, indicator, upper_zones, list(indicator.years), "agglomération et RPE")),
        _figure(indicator, "communes", bars.title, _chart_body(bars), source,
                _data_table(context, indicator, communes, [year], f"communes, {year}")),
    ]
    if base is not None:
        chart = map_chart(context, indicator, year, base, f"{prefix}m")
        missing = ", ".join(base.missing)
        note = (f'<p class="fiche">Communes sans contour dans le fichier de géométrie : {_e(missing)}</p>'
                if base.missing else "")
        parts.append(_figure(indicator, "carte", chart.title, _chart_body(chart) + note, source))
    else:
        body = (f'<div class="carte-absente"><p class="note-carte">Carte non disponible : '
                f"{_e(geometry.problem)}. Voir docs/reports.md pour obtenir un fichier de contours.</p></div>")
        parts.append(_figure(indicator, "carte", f"Carte des communes en {year}", body, source))
    return parts


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def render_html(context: ReportContext, geometry: Geometry) -> str:
    study, territory = context.study, context.territory
    indicators = context.reported_indicators
    n_communes = sum(1 for z in context.zones() if z.level == "commune")
    legend = "".join(
        f'<dt><span class="symbole">{_e(s)}</span></dt><dd>{_e(sentence(m))}</dd>' for s, m in symbol_legend(context)
    )
    sources = "".join(
        f"<tr><td><a href=\"#{_e(i.id)}\">{_e(i.label)}</a></td><td>{_e(period_text(context, [i]))}</td>"
        f"<td>{_e(source_line(context, i))}</td></tr>"
        for i in indicators
    )
    geo_note = ""
    if not geometry.available:
        geo_note = f'<p class="note">Cartes non disponibles : {_e(geometry.problem)}.</p>'
    elif geometry.missing:
        geo_note = (f'<p class="note">{len(geometry.missing)} commune(s) du territoire sans contour dans le '
                    f"fichier de géométrie : {_e(', '.join(geometry.missing))}.</p>")
    facts = [
        ("Étude", study.title),
        ("Double sigle", study.double_sign_off),
        ("Fournisseur des données", study.data_provider),
        ("Partenaire", study.partner),
        ("Convention", "signée le " + format_date(study.signed_on)),
        ("Territoire", f"{territory.epci_name} (EPCI {territory.epci_code}) : {len(context.rpes())} RPE, "
                       f"{n_communes} communes"),
        ("Période couverte", period_text(context)),
        ("Version des données", f"{context.data_version} (empreinte des indicateurs publiés)"),
        ("Date des données", data_date_text(context)),
        ("Document produit le", format_date(context.generated_at, with_time=True)),
        ("Service responsable", study.responsible or ""),
    ]
    facts_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    shown = [*indicators, *context.iris_only_indicators()]  # those of the IRIS only last
    toc = "".join(f'<li><a href="#{_e(i.id)}">{_e(i.label)}</a></li>' for i in shown)
    base = map_base(context, geometry) if geometry.available else None  # shared by every map of the page
    sections = "".join(_indicator_section(context, ind, geometry, base, n) for n, ind in enumerate(shown, start=1))
    method_rows = "".join(
        f"<tr><td>{_e(i.label)}</td><td>{_e(i.unit)}</td><td>{_e(formula_text(context, i))}</td>"
        f"<td>{_e(producer_text(context, i))}</td>"
        f"<td>{_e(period_text(context, [i]) if i.communal else year_span(i.all_years))}</td></tr>"
        for i in shown
    )
    caf = study.data_provider
    subtitle = ("Indicateurs petite enfance : agglomération, relais petite enfance (RPE) et communes – "
                f"{year_span(context.years)}")
    return f"""<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="author" content="{_e(study.double_sign_off)}">
<title>{_e(study.title)} – indicateurs petite enfance – {_e(study.double_sign_off)}</title>
<style>{CSS}</style>
</head>
<body>
<header class="bandeau">
<div class="sigle">{_e(study.double_sign_off)}</div>
<h1>{_e(study.title)}</h1>
<p>{_e(subtitle)}</p>
<p class="source-page">Source : {_e(caf)}</p>
</header>
<main>
<section id="presentation">
<h2>Présentation</h2>
<dl class="faits">{facts_html}</dl>
<p>Étude présentée sous le double sigle de l'agglomération et de la {_e(caf)}. Destinataires : comités technique
et stratégique Petite Enfance, groupe de travail inter-RPE ; la {_e(caf)} est destinataire des documents finaux
(article 3 de la convention).</p>
<h3>Lecture des graphiques et des tableaux</h3>
<dl class="faits">{legend}</dl>
<p>Les nombres sont arrondis à l'affichage. Sous chaque graphique, « Données du graphique » déplie le tableau
des valeurs représentées.</p>
{geo_note}
<h3>Sources par indicateur</h3>
<table class="sources"><thead><tr><th>Indicateur</th><th>Années</th><th>Source</th></tr></thead>
<tbody>{sources}</tbody></table>
<h3>Sommaire</h3>
<nav><ol>{toc}<li><a href="#methodologie">Méthodologie</a></li></ol></nav>
</section>
{sections}
<section id="methodologie">
<h2>Méthodologie</h2>
<table class="methode"><thead><tr><th>Indicateur</th><th>Unité</th><th>Mode de calcul</th><th>Producteur</th>
<th>Années</th></tr></thead><tbody>{method_rows}</tbody></table>
<h3>Échelons géographiques et calculs</h3>{_list(aggregation_rules(context))}
<h3>Le secret statistique (article 4 de la convention)</h3>{_list(secrecy_rules(context))}
<h3>Usage et diffusion (articles 2 et 3 de la convention)</h3>{_list(usage_rules(context))}
<p class="source">Source : {_e(caf)}</p>
</section>
</main>
<footer>{_e(study.double_sign_off)} · {_e(study.title)} · Source : {_e(caf)} · version des données
{_e(context.data_version)}</footer>
</body>
</html>
"""


def write_html(context: ReportContext, geometry: Geometry, path: Path) -> dict:
    """Write the page to `path`; return counts (indicators, charts, maps, size)."""
    page = render_html(context, geometry)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    n = len(context.reported_indicators)
    return {
        "indicators": n,
        "charts": n * (3 if geometry.available else 2),
        "maps": n if geometry.available else 0,
        "geometry_available": geometry.available,
        "communes_without_outline": len(geometry.missing) if geometry.available else None,
    }
