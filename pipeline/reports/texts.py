"""The French wording shared by the workbook and the HTML page, number formatting, the
source lines (convention, article 3) and the guard against formula injection."""

from __future__ import annotations

import datetime as dt
import math
import re

from pipeline.config_models.report import FORMULA_START
from pipeline.indicators import Indicator
from pipeline.reports.context import ReportContext

NNBSP = "\u202f"  # narrow no-break space: the French thousands separator
LEVEL_NAMES = {"epci": "Agglomération", "rpe": "RPE", "commune": "Commune", "iris": "IRIS"}
KIND_NAMES = {"count": "Effectif", "ratio": "Taux"}
MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
    "novembre", "décembre",
)


def neutralise(text: object) -> str:
    """A text a spreadsheet will never read as a formula: a leading = + - @ (or tab, line
    break) gets an apostrophe in front, as OWASP recommends."""
    s = "" if text is None else str(text)
    return "'" + s if s.startswith(FORMULA_START) else s


# ---- numbers and dates ------------------------------------------------------------------


def decimals(context: ReportContext, indicator: Indicator) -> int:
    """Decimals shown: a rate's as the policy publishes it (`rate_decimals`); 1 for a count
    with fractions (census estimates), else 0."""
    if indicator.kind == "ratio":
        return context.policy.rate_decimals
    return 0 if context.integer_valued(indicator) else 1


def decimals_text(digits: int) -> str:
    """'1 décimale', '2 décimales', 'l'unité' (0)."""
    return "l'unité" if digits == 0 else f"{digits} décimale" + ("s" if digits > 1 else "")


def excel_number_format(digits: int) -> str:
    return "#,##0" if digits == 0 else "#,##0." + "0" * digits


def format_number(value: float, digits: int) -> str:
    """1234.56 -> '1 234,6' (narrow no-break space, decimal comma)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:,.{digits}f}"
    return text.replace(",", NNBSP).replace(".", ",").replace("-", "−")


def parse_number(text: str) -> float:
    """The inverse of format_number (used by the guard)."""
    cleaned = re.sub(r"[\s\u202f\u00a0]", "", text).replace("−", "-").replace(",", ".")
    return float(cleaned)


def format_date(value: dt.date | dt.datetime | None, with_time: bool = False) -> str:
    if value is None:
        return "non renseignée"
    text = f"{value.day} {MONTHS[value.month - 1]} {value.year}"
    if with_time and isinstance(value, dt.datetime):
        text += f" à {value.hour:02d} h {value.minute:02d}"
    return text


def sentence(text: str) -> str:
    """The text with its first letter capitalised, the rest as written (str.capitalize lower-cases
    the rest: "Ne pas la compter" became "ne pas la compter", "CAF" "caf")."""
    return text[:1].upper() + text[1:]


def year_span(years) -> str:
    years = sorted(years)
    if not years:
        return ""
    if len(years) == 1:
        return str(years[0])
    return f"{years[0]} à {years[-1]}"


def period_text(context: ReportContext, indicators=None) -> str:
    """The years covered, and those declared whose files never came (with the files expected)."""
    years = sorted({y for i in indicators for y in context.indicator_years(i)}) if indicators else context.years
    missing = context.missing_text(indicators)
    return year_span(years) + (f" ; sans données pour {missing} : fichiers non reçus" if missing else "")


def data_date_text(context: ReportContext) -> str:
    """The date of the data: the years of the figures and the days their files were received
    (the ingest ledger), never the moment of the run that computed them."""
    text = f"années {year_span(context.years)}"
    received = context.coverage.received_on if context.coverage is not None else None
    if received:
        first, last = received
        text += (f", fichiers reçus le {format_date(first)}" if first == last
                 else f", fichiers reçus du {format_date(first)} au {format_date(last)}")
    return text


# ---- sources (article 3) -----------------------------------------------------------------


def provider(context: ReportContext) -> str:
    return context.study.data_provider


def source_line(context: ReportContext, indicator: Indicator) -> str:
    """'Source : CAF du Pas-de-Calais (Cntpaje)' or 'Sources : CAF du Pas-de-Calais, Insee'."""
    caf = provider(context)
    if indicator.producer == "CAF":
        note = (indicator.source_note or "").strip()
        note = re.sub(r"^source\s+", "", note, flags=re.IGNORECASE)
        return f"Source : {caf}" + (f" ({note})" if note else "")
    return f"Sources : {caf}, {context.config.producer_name(indicator.producer)}"


IRIS_SOURCE = "IRIS : données des CAF par IRIS (Cnaf, diffusion Insee)"


def iris_source_line(context: ReportContext, indicator: Indicator) -> str:
    """The source line of a commune's IRIS figures: the indicator's, and the IRIS files'."""
    return f"{source_line(context, indicator)} ; {IRIS_SOURCE}"


def all_sources_line(context: ReportContext, indicators: list[Indicator] | None = None) -> str:
    """One line naming the CAF and every other producer of the indicators."""
    indicators = indicators if indicators is not None else context.reported_indicators
    others = []
    for ind in indicators:
        name = context.config.producer_name(ind.producer)
        if ind.producer != "CAF" and name not in others:
            others.append(name)
    caf = provider(context)
    return f"Sources : {caf}, " + ", ".join(others) if others else f"Source : {caf}"


def producers_required(context: ReportContext, indicators: list[Indicator]) -> list[str]:
    """The names a source line must contain: the CAF, and each non-CAF producer."""
    names = [provider(context)]
    for ind in indicators:
        if ind.producer != "CAF":
            name = context.config.producer_name(ind.producer)
            if name not in names:
                names.append(name)
    return names


# ---- symbols and sheet names -------------------------------------------------------------


def symbol_legend(context: ReportContext) -> list[tuple[str, str]]:
    s = context.config.symbols
    return [
        # What each symbol says must be true of every cell (docs/disclosure.md, the reader
        # model in config/disclosure.yaml): `s` tells nothing of the value, not even that it
        # is not zero, nor, for a rate, that it exists.
        (s.masked, "valeur couverte par le secret statistique (article 4 de la convention) : elle "
                   "n'est pas diffusée. Le symbole ne dit rien de la valeur : elle peut être nulle "
                   "ou non, petite ou grande ; pour un taux, il peut aussi s'agir d'un taux non "
                   "calculable (dénominateur nul). Ne pas la compter comme un zéro."),
        (s.not_available, "valeur non disponible : donnée absente de la source ou total non "
                          "calculable, ou taux dont le dénominateur, diffusé, est nul."),
        (s.out_of_period, "année non couverte par la convention pour cet indicateur."),
    ]


def short_legend(context: ReportContext) -> str:
    s = context.config.symbols
    return (
        f"Lecture : « {s.masked} » = secret statistique (valeur non diffusée, qui peut être nulle : "
        f"ne pas la compter comme zéro) ; "
        f"« {s.not_available} » = non disponible ; « {s.out_of_period} » = année hors convention."
    )


_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def clean_sheet_name(name: str) -> str:
    name = _SHEET_FORBIDDEN.sub(" ", name).strip().strip("'")
    return name[:31].rstrip() or "Feuille"


def indicator_short_name(context: ReportContext, indicator: Indicator) -> str:
    return clean_sheet_name(context.config.sheet_names.get(indicator.id) or indicator.label)


def iris_row_label(context: ReportContext, indicator: Indicator, names: dict[str, str]) -> str:
    """How an IRIS sheet names an indicator: its sheet's name, or its short name when it is
    published at the IRIS only (it has no sheet of its own)."""
    return names.get(indicator.id) or indicator_short_name(context, indicator)


def sheet_names(context: ReportContext) -> dict[str, str]:
    """key -> sheet name, unique: 'cover', 'method', each indicator id, 'rpe:<code>',
    'iris:<commune code>' (a commune cut into IRIS)."""
    wanted = [("cover", "Présentation")]
    wanted += [(ind.id, indicator_short_name(context, ind)) for ind in context.reported_indicators]
    wanted += [(f"rpe:{z.code}", clean_sheet_name(z.name)) for z in context.rpes()]
    wanted += [(f"iris:{z.code}", clean_sheet_name(f"IRIS {z.name}")) for z in context.communes_with_iris()]
    wanted.append(("method", "Méthodologie"))
    out: dict[str, str] = {}
    used: set[str] = set()
    for key, name in wanted:
        candidate, n = name, 2
        while candidate.lower() in used:
            suffix = f" ({n})"
            candidate = name[: 31 - len(suffix)] + suffix
            n += 1
        used.add(candidate.lower())
        out[key] = candidate
    return out


# ---- methodology ---------------------------------------------------------------------------


def measure_label(context: ReportContext, measure: str) -> str:
    for ind in context.indicators.indicators:
        if ind.kind == "count" and ind.measure == measure:
            return ind.label
    return context.config.measure_labels.get(measure, sentence(measure.replace("_", " ")))


def formula_text(context: ReportContext, indicator: Indicator) -> str:
    if not indicator.communal:
        return ("Effectif, à l'IRIS seulement (données CAF par IRIS publiées par l'Insee) : pas de chiffre "
                "pour les communes, les RPE et l'agglomération.")
    if indicator.kind == "count":
        return (
            "Effectif. Pour un RPE et pour l'agglomération : somme des communes (ou chiffre de la "
            "CAF pour la zone quand une commune est sous secret)."
        )
    multiplier = indicator.multiplier or 1
    mult = f" × {format_number(multiplier, 0)}" if multiplier != 1 else ""
    return (
        f"Taux = ({measure_label(context, indicator.numerator)}) / "
        f"({measure_label(context, indicator.denominator)}){mult}. À chaque échelon, numérateur et "
        "dénominateur sont d'abord additionnés sur les communes de la zone, puis divisés : le taux d'un "
        "RPE n'est jamais une moyenne des taux de ses communes."
    )


def producer_text(context: ReportContext, indicator: Indicator) -> str:
    name = context.config.producer_name(indicator.producer)
    note = (indicator.source_note or "").strip()
    return name + (f" ({note})" if note else "")


def note_text(context: ReportContext, indicator: Indicator) -> str:
    return context.config.notes.get(indicator.id, "")


def secrecy_rules(context: ReportContext) -> list[str]:
    """Article 4 as the policy applies it (config/disclosure.yaml: threshold, minimum)."""
    policy = context.policy
    return [
        f"Aucune donnée n'est diffusée si elle concerne moins de {policy.threshold} allocataires : la "
        "valeur est masquée (« mise à blanc ») et remplacée par le symbole du secret statistique.",
        "Pour qu'une valeur masquée ne puisse pas être retrouvée par différence (à partir du total "
        "d'un RPE ou de l'agglomération et des autres communes), d'autres valeurs peuvent être "
        "masquées aussi (secret secondaire).",
        "Aucune zone plus petite qu'une commune, ni aucune sous-population, n'est étudiée si elle "
        f"compte moins de {policy.minimum_allocataires} allocataires : toutes les valeurs d'un IRIS "
        f"(quartier d'une grande commune) de moins de {policy.minimum_allocataires} allocataires sont "
        "masquées. Les IRIS d'une commune s'additionnent pour donner la commune : une valeur d'IRIS "
        "masquée ne peut pas être retrouvée à partir du chiffre de la commune et des autres IRIS.",
        "Aucune information diffusée ne doit permettre d'identifier, directement ou indirectement, "
        "un allocataire.",
        "Une valeur masquée peut être nulle ou non : ne pas la remplacer par 0, ne pas chercher à la "
        "recalculer par différence.",
    ]


def iris_rule(context: ReportContext) -> str:
    """The minimum of article 4 for an IRIS, in a sentence."""
    return (f"Un IRIS de moins de {context.policy.minimum_allocataires} allocataires n'est pas étudié : "
            "toutes ses valeurs sont masquées (article 4).")


def usage_rules(context: ReportContext) -> list[str]:
    """Articles 2 and 3, naming the study's data provider (config/study.yaml)."""
    return [
        f"Les données sont mises à disposition par la {provider(context)} pour un usage interne à "
        "l'étude ; elles ne peuvent être cédées, en tout ou partie, sans l'accord préalable de la CAF "
        "(article 2). Elles sont détruites à l'issue de l'étude.",
        "Tout document produit, et toute présentation orale, mentionne la CAF comme source. L'étude "
        "est présentée sous le double sigle de l'agglomération et de la CAF ; la CAF est destinataire "
        "des documents finaux (article 3).",
    ]


def aggregation_rules(context: ReportContext) -> list[str]:
    """How zones add up, and the rounding of rates the policy publishes (`rate_decimals`)."""
    return [
        "Trois échelons : les communes, les relais petite enfance (RPE, qui regroupent des communes) "
        "et l'agglomération (l'ensemble des RPE).",
        "Les effectifs d'un RPE ou de l'agglomération sont la somme de leurs communes. Quand une "
        "commune est sous secret, le total n'est pas recalculé : le chiffre transmis par la CAF pour "
        "la zone est repris s'il existe, sinon la valeur n'est pas disponible.",
        "Les taux sont recalculés à chaque échelon à partir des numérateurs et dénominateurs "
        "additionnés, jamais en faisant la moyenne des taux des communes.",
        f"Les taux sont diffusés arrondis à {decimals_text(context.policy.rate_decimals)} ; les autres "
        "nombres sont arrondis à l'affichage, leur valeur exacte figure dans les cellules du classeur.",
    ]
