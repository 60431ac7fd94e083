"""Pandera schemas of the source tables, derived from their declaration in
`config/catalog.yaml` (measures, types, rules, zone level): no per-source module.

`schema_for(source, zone_check)` builds the schema of the staged frame of one year (one
row per zone); the zone check (codes known to the territory, or lying within it) is
given by validation, since the territory is configuration.
"""

from schemas._build import measure_checks, rule_check, schema_for

__all__ = ["measure_checks", "rule_check", "schema_for"]
