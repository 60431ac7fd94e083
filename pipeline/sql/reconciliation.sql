-- CAF aggregates vs bottom-up sums: the (zone, measure, year) cells where the producer
-- gives its own RPE or EPCI figure, every commune under the zone is known, and the sum
-- of the communes differs from that figure by more than the tolerance ($tolerance).
--
-- Reads confidential.indicator_inputs. Returns codes only (no values): the result goes
-- to Dagster metadata, which must never hold a confidential value.
SELECT level, zone_code, source, measure, CAST(year AS INTEGER) AS year
FROM confidential.indicator_inputs
WHERE level IN ('rpe', 'epci')
  AND source_flag = 'reported'
  AND bottom_up_value IS NOT NULL
  AND abs(bottom_up_value - caf_value) > $tolerance
ORDER BY CASE level WHEN 'epci' THEN 1 ELSE 2 END, zone_code, source, measure, year
