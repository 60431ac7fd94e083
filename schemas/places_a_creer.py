"""Schema of the theoretical childcare places to create (CAF, 2020): one row per zone."""

from schemas._build import TableSpec, count

SPEC = TableSpec(
    source="places_a_creer",
    description="Theoretical places for children under 3 still to create (CAF)",
    measures={"places_theoriques_a_creer": count("places to create")},
)
