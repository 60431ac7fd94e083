"""Schema of the INSEE census schooling of 2-year-olds: one row per commune and year."""

from schemas._build import AtMost, TableSpec, count

SPEC = TableSpec(
    source="scolarisation",
    description="Children aged 2 and those of them in school (INSEE census, weighted counts)",
    measures={
        "enfants_2_ans": count("children aged 2 (weighted census count)", integer=False),
        "enfants_moins_3_ans_scolarises": count("children under 3 in school (weighted census count)", integer=False),
    },
    rules=[AtMost("enfants_moins_3_ans_scolarises", "enfants_2_ans")],
)
