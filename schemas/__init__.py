"""Pandera schemas, one module per source table of the convention's annex."""

from schemas import bca, bcecpaj, couverture, naissances, places_a_creer, scolarisation
from schemas._build import TableSpec

SPECS: dict[str, TableSpec] = {
    module.SPEC.source: module.SPEC
    for module in (bca, bcecpaj, naissances, scolarisation, couverture, places_a_creer)
}
