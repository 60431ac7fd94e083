"""Schema of the Base Communale Allocataires (BCA, CAF): one row per zone and year."""

from schemas._build import AtMost, TableSpec, count

SPEC = TableSpec(
    source="bca",
    description="Base Communale Allocataires (CAF): allocataires and their children",
    measures={
        "allocataires": count("allocataires paid in December"),
        "enfants_moins_3_ans": count("children under 3 in allocataire households"),
        "enfants_moins_3_ans_cmg": count("children under 3 whose family receives the CMG"),
        "aeeh_0_2_ans": count("children aged 0-2 with AEEH"),
        "aeeh_3_5_ans": count("children aged 3-5 with AEEH"),
        "enfants_moins_6_ans_aeeh": count("children under 6 with AEEH (0-2 plus 3-5)"),
        "femmes_actives_enfants_moins_3_ans": count("active women with a child under 3"),
        "femmes_enfants_moins_3_ans": count("women with a child under 3"),
    },
    rules=[
        AtMost("enfants_moins_3_ans_cmg", "enfants_moins_3_ans"),
        AtMost("aeeh_0_2_ans", "enfants_moins_3_ans"),
        AtMost("femmes_actives_enfants_moins_3_ans", "femmes_enfants_moins_3_ans"),
    ],
)
