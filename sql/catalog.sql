-- Writes to the catalog's own tables (runs, days), by tasks/catalog.py. `$name` values are
-- bound by DuckDB as parameters.

-- name: upsert_days
-- The given days as their manifests and states say now, registered by run $run_id.
INSERT OR REPLACE INTO days
SELECT m.digest_date, s.status,
       m.query, m.candidates, m.papers, m.dropped, m.config_hash, $run_id, now()
FROM day_manifests m JOIN day_states s USING (digest_date)
WHERE m.digest_date IN (SELECT unnest(CAST($days AS DATE[])));

-- name: rebuild_days
-- Every day of the lake, credited to the last run that finished it (catalog rebuild).
INSERT INTO days
SELECT m.digest_date, s.status,
       m.query, m.candidates, m.papers, m.dropped,
       m.config_hash, last.run_id, now()
FROM day_manifests m
LEFT JOIN (
    SELECT d AS digest_date, arg_max(run_id, finished_at) AS run_id
    FROM (SELECT unnest(days) AS d, run_id, finished_at FROM runs)
    GROUP BY d
) last ON CAST(last.digest_date AS DATE) = m.digest_date
JOIN day_states s ON s.digest_date = m.digest_date;

-- name: upsert_runs
-- `run_rows` is an Arrow table with RUNS_SCHEMA (tasks/catalog.py), registered on the
-- connection: matched by name, so no column list is kept here.
INSERT OR REPLACE INTO runs BY NAME SELECT * FROM run_rows;

-- name: rebuild_runs
-- The run records of the lake ($glob); records written before a column existed give NULL.
INSERT INTO runs BY NAME
SELECT * FROM read_parquet($glob, hive_partitioning = false, union_by_name = true);

-- name: term_weeks_any
-- A row if any week was summed (else registration sums them all).
SELECT 1 FROM term_week_papers LIMIT 1;

-- name: term_weeks_delete
-- The weeks of the days $first..$last, about to be summed again.
DELETE FROM term_week_counts
WHERE week BETWEEN CAST(date_trunc('week', CAST($first AS DATE)) AS DATE) AND CAST($last AS DATE);
DELETE FROM term_week_papers
WHERE week BETWEEN CAST(date_trunc('week', CAST($first AS DATE)) AS DATE) AND CAST($last AS DATE);

-- name: term_weeks_insert
-- The weeks of the days $first..$last summed from `terms` (a range of digest days, so only
-- those days' files are read). A week's papers are its days' papers (days with terms only).
INSERT INTO term_week_counts
SELECT CAST(date_trunc('week', digest_date) AS DATE) AS week, term, sum(count)
FROM terms
WHERE digest_date BETWEEN CAST(date_trunc('week', CAST($first AS DATE)) AS DATE)
                      AND CAST(date_trunc('week', CAST($last AS DATE)) AS DATE) + 6
GROUP BY ALL;
INSERT INTO term_week_papers
SELECT CAST(date_trunc('week', digest_date) AS DATE) AS week, sum(papers)
FROM (SELECT DISTINCT digest_date, papers FROM terms
      WHERE digest_date BETWEEN CAST(date_trunc('week', CAST($first AS DATE)) AS DATE)
                            AND CAST(date_trunc('week', CAST($last AS DATE)) AS DATE) + 6)
GROUP BY ALL;
