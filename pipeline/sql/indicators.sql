-- confidential.indicators: one row per (level, zone, indicator, year of the indicator).
--
-- Reads:
--   confidential.indicator_inputs  the measures per zone and year (indicator_inputs.sql)
--   indicator_defs                 the definitions of config/indicators.yaml
--   indicator_years                the years each indicator covers (no row outside them)
--   indicator_levels               per indicator, group of levels (zone_group: commune for
--                                  commune / RPE / EPCI, iris below the commune) and year:
--                                  the source, measures and allocataires read there
--
-- Rules:
--   * count: the measure as aggregated in indicator_inputs.
--   * ratio: numerator x multiplier / denominator, both taken at the zone's own level
--     (sums of the communes, or the producer's own zone figure): never an average of
--     the communes' rates, never clamped (a coverage rate may exceed 100).
--     Unknown when either term is unknown or the denominator is 0.
--   * value_origin of a ratio: caf_aggregate when a term comes from the producer's own
--     zone figure, computed otherwise.
--   * source_value: the producer's own published value of the indicator when its file
--     has one (published_measure, e.g. the Cnaf's rounded coverage rate): comparison only.
WITH
zones AS (
    SELECT DISTINCT level, zone_code, zone_name, parent_code FROM confidential.indicator_inputs
),
grid AS (
    SELECT z.*, d.indicator, d.indicator_order, d.kind, d.multiplier,
           l.year, l.source, l.measure, l.numerator, l.denominator, l.published_measure,
           l.alloc_source, l.alloc_measure
    FROM zones z
    CROSS JOIN indicator_defs d
    JOIN indicator_levels l
        ON l.indicator = d.indicator
        AND l.zone_group = CASE WHEN z.level IN ('commune', 'rpe', 'epci') THEN 'commune' ELSE z.level END
),
joined AS (
    SELECT
        g.level, g.zone_code, g.zone_name, g.parent_code, g.indicator, g.indicator_order,
        g.year, g.kind, g.multiplier,
        m.value AS m_value, m.status AS m_status, m.value_origin AS m_origin,
        n.value AS n_value, n.status AS n_status, n.value_origin AS n_origin,
        d.value AS d_value, d.status AS d_status, d.value_origin AS d_origin,
        a.value AS allocataires,
        CASE WHEN p.level = 'commune' THEN p.value ELSE p.caf_value END AS source_value
    FROM grid g
    LEFT JOIN confidential.indicator_inputs m
        ON g.kind = 'count' AND m.level = g.level AND m.zone_code = g.zone_code
        AND m.source = g.source AND m.measure = g.measure AND m.year = g.year
    LEFT JOIN confidential.indicator_inputs n
        ON g.kind = 'ratio' AND n.level = g.level AND n.zone_code = g.zone_code
        AND n.source = g.source AND n.measure = g.numerator AND n.year = g.year
    LEFT JOIN confidential.indicator_inputs d
        ON g.kind = 'ratio' AND d.level = g.level AND d.zone_code = g.zone_code
        AND d.source = g.source AND d.measure = g.denominator AND d.year = g.year
    LEFT JOIN confidential.indicator_inputs a
        ON a.level = g.level AND a.zone_code = g.zone_code
        AND a.source = g.alloc_source AND a.measure = g.alloc_measure AND a.year = g.year
    LEFT JOIN confidential.indicator_inputs p
        ON p.level = g.level AND p.zone_code = g.zone_code
        AND p.source = g.source AND p.measure = g.published_measure AND p.year = g.year
)
SELECT
    level, zone_code, zone_name, parent_code, indicator, CAST(year AS INTEGER) AS year,
    CASE
        WHEN kind = 'count' AND m_status = 'ok' THEN m_value
        WHEN kind = 'ratio' AND n_status = 'ok' AND d_status = 'ok' AND d_value <> 0
            THEN n_value * multiplier / d_value
    END AS value,
    CASE WHEN kind = 'ratio' THEN n_value END AS numerator,
    CASE WHEN kind = 'ratio' THEN d_value END AS denominator,
    allocataires,
    CASE
        WHEN kind = 'count' THEN coalesce(m_origin, 'computed')
        WHEN 'caf_aggregate' IN (n_origin, d_origin) THEN 'caf_aggregate'
        ELSE 'computed'
    END AS value_origin,
    CASE
        WHEN kind = 'count' THEN coalesce(m_status, 'not_available')
        WHEN n_status = 'ok' AND d_status = 'ok' AND d_value <> 0 THEN 'ok'
        WHEN n_status = 'secret_at_source' OR d_status = 'secret_at_source' THEN 'secret_at_source'
        ELSE 'not_available'
    END AS status,
    source_value
FROM joined
ORDER BY CASE level WHEN 'epci' THEN 1 WHEN 'rpe' THEN 2 WHEN 'commune' THEN 3 ELSE 4 END,
    zone_code, indicator_order, year
