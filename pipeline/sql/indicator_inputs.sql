-- confidential.indicator_inputs: every measure the indicators need, for every zone
-- (communes, RPE, EPCI, and the zones below the commune: IRIS) and every year an
-- indicator needs it.
--
-- Reads (temporary tables prepared by pipeline.defs.warehouse):
--   staging_inputs      the staging rows of the sources the indicators read
--                       (source, year, level, zone_code, measure, value, flag)
--   indicator_zones     the territory: level, zone_code, zone_name, parent_code
--   indicator_measures  the (source, measure, year) triples the indicators need, the
--                       group of levels reading them (zone_group: commune for commune,
--                       RPE and EPCI; iris for the IRIS), and whether the measure adds
--                       up (additive; a published rate does not)
--
-- Rules:
--   * a zone below the commune (IRIS) reads its own source, like a commune; the
--     commune's figure never comes from its IRIS (it keeps its own source).
--   * commune: the value of the file; a blank cell stays unknown (secret_at_source, or
--     not_available when the cell is missing or the commune has no row).
--   * RPE / EPCI: the sum of the commune values when EVERY commune under the zone is
--     known (value_origin computed). A blank is never counted as zero: otherwise the
--     producer's own figure for the zone is used when its file has one (caf_aggregate),
--     else the zone is not_available (or secret_at_source when the producer blanked
--     its own figure). A non-additive measure (a published rate) is never summed: only
--     the producer's own zone figure is taken.
--   * lower_bound_internal (sum of the known communes of an incomplete zone) is for
--     diagnosis only and is never published.
WITH
staged AS (
    SELECT
        source, year, level, zone_code, measure,
        CASE WHEN flag = 'reported' AND value IS NOT NULL THEN value END AS value,
        CASE
            WHEN flag = 'reported' AND value IS NOT NULL THEN 'reported'
            WHEN flag = 'secret_at_source' THEN 'secret_at_source'
            ELSE 'missing'
        END AS flag
    FROM staging_inputs
),
-- which communes make up each zone above the commune (RPE: its communes; EPCI: the
-- communes of its RPE)
membership AS (
    SELECT 'rpe' AS level, c.parent_code AS zone_code, c.zone_code AS commune_code
    FROM indicator_zones c
    WHERE c.level = 'commune'
    UNION ALL
    SELECT 'epci', r.parent_code, c.zone_code
    FROM indicator_zones c
    JOIN indicator_zones r ON r.level = 'rpe' AND c.parent_code = r.zone_code
    WHERE c.level = 'commune'
),
grid AS (
    SELECT z.level, z.zone_code, z.zone_name, z.parent_code, m.source, m.measure, m.year, m.additive
    FROM indicator_zones z
    JOIN indicator_measures m
        ON m.zone_group = CASE WHEN z.level IN ('commune', 'rpe', 'epci') THEN 'commune' ELSE z.level END
),
commune_cells AS (
    SELECT g.*, s.value, coalesce(s.flag, 'missing') AS flag
    FROM grid g
    LEFT JOIN staged s
        ON s.level = 'commune' AND s.zone_code = g.zone_code AND s.source = g.source
        AND s.measure = g.measure AND s.year = g.year
    WHERE g.level = 'commune'
),
-- the zones below the commune (IRIS): the value of their file, like a commune's
infra_cells AS (
    SELECT g.*, s.value, coalesce(s.flag, 'missing') AS flag
    FROM grid g
    LEFT JOIN staged s
        ON s.level = g.level AND s.zone_code = g.zone_code AND s.source = g.source
        AND s.measure = g.measure AND s.year = g.year
    WHERE g.level NOT IN ('commune', 'rpe', 'epci')
),
bottom_up AS (
    SELECT
        mb.level, mb.zone_code, c.source, c.measure, c.year,
        count(*) AS n_communes,
        count(c.value) AS n_communes_known,
        count(*) FILTER (WHERE c.flag = 'secret_at_source') AS n_communes_secret,
        -- exact decimal sums: a parallel sum of doubles depends on the order it adds them in
        CAST(sum(CAST(c.value AS DECIMAL(38, 10))) AS DOUBLE) AS known_sum
    FROM membership mb
    JOIN commune_cells c ON c.zone_code = mb.commune_code
    GROUP BY ALL
),
aggregate_cells AS (
    SELECT
        g.*,
        coalesce(b.n_communes, 0) AS n_communes,
        coalesce(b.n_communes_known, 0) AS n_communes_known,
        coalesce(b.n_communes_secret, 0) AS n_communes_secret,
        CASE WHEN g.additive AND b.n_communes > 0 AND b.n_communes_known = b.n_communes
            THEN b.known_sum END AS bottom_up_value,
        CASE WHEN g.additive AND b.n_communes_known < b.n_communes THEN b.known_sum END AS lower_bound_internal,
        caf.value AS caf_value,
        caf.flag AS caf_flag
    FROM grid g
    LEFT JOIN bottom_up b
        ON b.level = g.level AND b.zone_code = g.zone_code AND b.source = g.source
        AND b.measure = g.measure AND b.year = g.year
    LEFT JOIN staged caf
        ON caf.level = g.level AND caf.zone_code = g.zone_code AND caf.source = g.source
        AND caf.measure = g.measure AND caf.year = g.year
    WHERE g.level IN ('rpe', 'epci')
)
SELECT
    level, zone_code, zone_name, parent_code, source, measure, year, additive,
    value,
    CASE flag WHEN 'reported' THEN 'ok' WHEN 'secret_at_source' THEN 'secret_at_source' ELSE 'not_available' END AS status,
    'source' AS value_origin,
    flag AS source_flag,
    1 AS n_communes,
    CASE WHEN value IS NOT NULL THEN 1 ELSE 0 END AS n_communes_known,
    CASE WHEN flag = 'secret_at_source' THEN 1 ELSE 0 END AS n_communes_secret,
    CAST(NULL AS DOUBLE) AS bottom_up_value,
    CAST(NULL AS DOUBLE) AS lower_bound_internal,
    CAST(NULL AS DOUBLE) AS caf_value
FROM (SELECT * FROM commune_cells UNION ALL SELECT * FROM infra_cells)
UNION ALL
SELECT
    level, zone_code, zone_name, parent_code, source, measure, year, additive,
    CASE
        WHEN bottom_up_value IS NOT NULL THEN bottom_up_value
        WHEN caf_flag = 'reported' THEN caf_value
    END AS value,
    CASE
        WHEN bottom_up_value IS NOT NULL OR caf_flag = 'reported' THEN 'ok'
        WHEN caf_flag = 'secret_at_source' THEN 'secret_at_source'
        ELSE 'not_available'
    END AS status,
    CASE
        WHEN bottom_up_value IS NOT NULL THEN 'computed'
        WHEN caf_flag IN ('reported', 'secret_at_source') THEN 'caf_aggregate'
        ELSE 'computed'
    END AS value_origin,
    caf_flag AS source_flag,
    n_communes, n_communes_known, n_communes_secret,
    bottom_up_value, lower_bound_internal, caf_value
FROM aggregate_cells
ORDER BY
    CASE level WHEN 'epci' THEN 1 WHEN 'rpe' THEN 2 WHEN 'commune' THEN 3 ELSE 4 END, zone_code, source, measure, year
