"""Schema of the childminder tables BCECPAJ20 / BCECPAJ21 (Cntpaje): one row per zone and year."""

from schemas._build import AtMost, TableSpec, count

SPEC = TableSpec(
    source="bcecpaj",
    description="Approved childminders declared by parent-employers (Cntpaje)",
    measures={
        "am_agrees_actifs_annee": count("approved childminders active at least one month of the year"),
        "am_actifs_decembre": count("approved childminders active in December"),
        "am_plus_55_ans": count("active approved childminders aged over 55"),
    },
    rules=[
        AtMost("am_actifs_decembre", "am_agrees_actifs_annee"),
        AtMost("am_plus_55_ans", "am_agrees_actifs_annee"),
    ],
)
