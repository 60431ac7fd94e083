-- How many (zone, measure, year) cells the reconciliation compares: the producer gives
-- its own RPE or EPCI figure and every commune under the zone is known.
SELECT count(*) AS n_compared
FROM confidential.indicator_inputs
WHERE level IN ('rpe', 'epci') AND source_flag = 'reported' AND bottom_up_value IS NOT NULL
