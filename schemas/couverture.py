"""Schema of the Cnaf childcare coverage rate: one row per zone and year.

The rate may exceed 100 (more places than children under 3) and is never clamped;
the bound below only catches a misplaced decimal point.
"""

from schemas._build import TableSpec, count, rate

SPEC = TableSpec(
    source="couverture",
    description="Childcare places and coverage rate for children under 3 (Cnaf)",
    measures={
        "places_accueil": count("places in formal childcare", integer=False),
        "enfants_moins_3_ans_cnaf": count("children under 3 (Cnaf)"),
        "taux_couverture_global": rate("places per 100 children under 3", maximum=1000),
    },
)
