"""The quirks of the real files that the catalog cannot say (extra columns, technical and
total rows, codes stored as numbers, secret markers, encodings, title blocks and notes),
and the fixed values that make the sample byte-identical run after run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Name of the single workbook written in bundle mode; must match the catalog's bundle regex.
BUNDLE_FILE = "convention_caf_cabbalr.xlsx"
# Extra column carrying the sentinel string; never mapped in the catalog.
SENTINEL_LABEL = "COMMENTAIRE"
# Every timestamp that ends up in a file: no current time anywhere, so that the same
# seed gives byte-identical files.
FIXED_TIME = datetime(2022, 9, 1, 9, 0, 0)

KEY_MEASURES = ("code_zone", "nom_zone")
# Years the model always covers (the convention's study period); catalog years are added.
MODEL_YEARS = range(2017, 2022)


# ---------------------------------------------------------------------------------------
# Quirks of the real files. Only what the catalog cannot say lives here.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtraColumn:
    """A column present in the real files but not mapped by the catalog."""

    label: str  # may contain {yy}: the two-digit year of the vintage
    measure: str  # column of the statistical model
    first_year: int = 0


EXTRA_COLUMNS: dict[str, tuple[ExtraColumn, ...]] = {
    "bca": (
        ExtraColumn("NB_Enfants_3_5_ans", "enfants_3_5_ans"),
        ExtraColumn("AEEH_6A11", "aeeh_6_11_ans"),
        # The CMG breakdown by mode of care appears in 2020 (source-formats.md).
        ExtraColumn("ALL_CMG_ASMA", "allocataires_cmg_asma", first_year=2020),
        ExtraColumn("ALL_CMG_DOM", "allocataires_cmg_dom", first_year=2020),
    ),
    "scolarisation": (
        ExtraColumn("P{yy}_POP0205", "enfants_2_5_ans"),
        ExtraColumn("P{yy}_SCOL0205", "enfants_2_5_ans_scolarises"),
    ),
}

# A CSV vintage whose catalog entry maps no name column (scolarisation 2018) still carries
# the commune names, under the spelling of INSEE's IRIS-level files: the Windows-1252
# encoding of that file then matters (accented names), while the ingest, following the
# catalog, reads no names from it.
CSV_NAME_FALLBACK_LABEL = "LIBCOM"

# Rows that are not zones (codes listed in the catalog's technical_codes). "every": in
# every vintage of the source; "last": only in its last vintage (one sheet).
TECHNICAL_ROWS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "bca": ("every", (("99999", "Résidents à l'étranger"), ("XXXXX", "Commune inconnue"))),
    "bcecpaj": ("last", (("XX", "Non ventilé"),)),
}
# Population of the pseudo-communes behind technical rows: small values.
TECHNICAL_POPULATION = (60, 250)

# Total rows after the communes, by producer: the CAF adds its RPE and EPCI rows, the
# Cnaf coverage file one EPCI row, INSEE files hold communes only.
AGGREGATE_LEVELS: dict[str, tuple[str, ...]] = {"CAF": ("rpe", "epci"), "Cnaf": ("epci",)}
# Commune (and EPCI) codes stored as numbers, the leading-zero-losing way.
NUMERIC_CODES = frozenset({"bcecpaj"})
# Text standing in a blanked cell; sources not listed leave the cell empty.
SECRET_CELL: dict[str, str] = {"bcecpaj": "s"}
# Year column of long files written as a date (31 December) rather than an integer.
YEAR_AS_DATE = frozenset({"couverture"})
# CSV encodings when the catalog names none: (source, year or None for any year).
CSV_ENCODING: dict[tuple[str, int | None], str] = {
    ("naissances", None): "utf-8-sig",
    ("scolarisation", 2018): "cp1252",
}
# INSEE files leave one or two cells empty per file (missing, not secret).
MISSING_CELLS_PER_FILE: dict[str, tuple[int, int]] = {"INSEE": (1, 2)}

# Lines of the title block and of the notes under the table, per source.
NOTES: dict[str, dict[str, str]] = {
    "bca": {
        "champ": "allocataires payés au titre du mois de décembre",
        "source": "Source : Cnaf - BCA {years}, Caf du Pas-de-Calais",
        "lecture": "Lecture : NB_Allocataires est le nombre de foyers allocataires de la commune.",
    },
    "bcecpaj": {
        "champ": "assistants maternels déclarés par des particuliers employeurs",
        "source": "Source : Cnaf - Cntpaje (Pajemploi), BCECPAJ {years}",
        "lecture": "Lecture : un assistant maternel est actif s'il a été déclaré au moins un mois.",
    },
    "couverture": {
        "champ": "places d'accueil formel pour 100 enfants de moins de 3 ans, au 31 décembre",
        "source": "Source : Cnaf - taux de couverture global (TCG) {years}",
        "lecture": "Lecture : le taux peut dépasser 100 ; il n'est pas la somme de ses composantes arrondies.",
    },
    "places_a_creer": {
        "champ": "places théoriques d'accueil des moins de 3 ans à créer",
        "source": "Source : Caf du Pas-de-Calais - places à créer {years}",
        "lecture": "Lecture : nombre de places à créer pour atteindre l'objectif de couverture.",
    },
}
SECRET_NOTES = (
    "s : secret statistique",
    "Case vide : secret statistique (effectif de 1 à 4, ou masqué pour protéger une autre case)",
)
