-- confidential.indicators_evolution: change from the first to the last year of each
-- count indicator covering more than one year (2017 -> 2021, 2017 -> 2020), per zone.
--
-- Reads confidential.indicators and indicator_defs / indicator_levels (the years of an
-- indicator at each group of levels: commune / RPE / EPCI, or IRIS).
-- Computed only from known values: when either end is unknown the change is NULL and
-- the status says why. change_pct is NULL when the first-year value is 0.
WITH
spans AS (
    SELECT d.indicator, d.indicator_order, y.zone_group, min(y.year) AS first_year, max(y.year) AS last_year
    FROM indicator_defs d
    JOIN indicator_levels y ON y.indicator = d.indicator
    WHERE d.kind = 'count'
    GROUP BY ALL
    HAVING count(*) > 1
)
SELECT
    f.level, f.zone_code, f.zone_name, f.parent_code, s.indicator,
    CAST(s.first_year AS INTEGER) AS first_year,
    CAST(s.last_year AS INTEGER) AS last_year,
    f.value AS value_first_year,
    l.value AS value_last_year,
    CASE WHEN f.status = 'ok' AND l.status = 'ok' THEN l.value - f.value END AS change_abs,
    CASE WHEN f.status = 'ok' AND l.status = 'ok' AND f.value <> 0
        THEN (l.value - f.value) * 100 / f.value END AS change_pct,
    f.value_origin AS value_origin_first_year,
    l.value_origin AS value_origin_last_year,
    CASE
        WHEN f.status = 'ok' AND l.status = 'ok' THEN 'ok'
        WHEN f.status = 'secret_at_source' OR l.status = 'secret_at_source' THEN 'secret_at_source'
        ELSE 'not_available'
    END AS status
FROM spans s
JOIN confidential.indicators f
    ON f.indicator = s.indicator AND f.year = s.first_year
    AND s.zone_group = CASE WHEN f.level IN ('commune', 'rpe', 'epci') THEN 'commune' ELSE f.level END
JOIN confidential.indicators l
    ON l.indicator = s.indicator AND l.year = s.last_year
    AND l.level = f.level AND l.zone_code = f.zone_code
ORDER BY CASE f.level WHEN 'epci' THEN 1 WHEN 'rpe' THEN 2 WHEN 'commune' THEN 3 ELSE 4 END, f.zone_code, s.indicator_order
