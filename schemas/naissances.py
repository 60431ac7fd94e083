"""Schema of the INSEE births by commune of residence: one row per commune and year."""

from schemas._build import TableSpec, count

SPEC = TableSpec(
    source="naissances",
    description="Births by commune of residence of the mother (INSEE, état civil)",
    measures={"naissances": count("live births")},
)
