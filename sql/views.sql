-- Views over the lake. `$table` and `$glob` are filled in per dataset by tasks/catalog.py
-- ($glob as a quoted SQL string literal, so any lake path works).

-- name: lake_view
-- The typed empty stand-in joins by name, so a column added to a dataset after its older days
-- were written reads as NULL there, even when no file has it yet (no rows, no cost).
CREATE OR REPLACE VIEW $table AS
SELECT * FROM read_parquet($glob, hive_partitioning = true,
                           hive_types = {'digest_date': DATE}, union_by_name = true)
UNION ALL BY NAME SELECT * FROM empty.$table;

-- name: empty_view
CREATE OR REPLACE VIEW $table AS SELECT * FROM empty.$table;

-- name: derived_views
-- One row per (paper, category): the shape most analyst questions want.
CREATE OR REPLACE VIEW paper_categories AS
SELECT digest_date, arxiv_id, unnest(categories) AS category, primary_category
FROM papers;

-- Each ingested day's state, copied into `days` at registration: ingested; digested;
-- digested-with-failures (some LLM requests failed transiently: not finished, the next run asks
-- just those again); failed (the last run failed the day before a new digest).
CREATE OR REPLACE VIEW day_states AS
SELECT m.digest_date,
       CASE WHEN m.status = 'failed' OR g.digest_date IS NULL THEN m.status
            WHEN coalesce(g.llm_failed, 0) > 0 THEN 'digested-with-failures'
            ELSE 'digested' END AS status
FROM day_manifests m
-- Digests written before the LLM counts existed lack the column: the empty SELECT adds it
-- (NULL), so a lake or catalog of older days still binds.
-- A day has one digest per profile, all made by the same run: one row per day.
LEFT JOIN (SELECT digest_date, max(llm_failed) AS llm_failed FROM (
               SELECT * FROM digests UNION ALL BY NAME
               SELECT CAST(NULL AS DATE) AS digest_date, CAST(NULL AS INTEGER) AS llm_failed
               WHERE false)
           GROUP BY digest_date) g
    USING (digest_date);

-- The index of every digest (output/README.md, or each profile's folder's): its paper count
-- and the titles of its first three papers in rank order. A digest imported without rankings
-- has no titles here. Rows written before profiles have no profile: they are the default's
-- (the empty SELECTs add the column to lakes older than it).
CREATE OR REPLACE VIEW digest_index AS
SELECT g.profile, g.digest_date, g.paper_count,
       coalesce(list(t.title ORDER BY t.rank) FILTER (WHERE t.title IS NOT NULL),
                []) AS top_titles
FROM (SELECT * REPLACE (coalesce(profile, 'default') AS profile) FROM (
          SELECT * FROM digests UNION ALL BY NAME
          SELECT CAST(NULL AS VARCHAR) AS profile WHERE false)) g
LEFT JOIN (
    SELECT r.profile, r.digest_date, r.rank, p.title
    FROM (SELECT * REPLACE (coalesce(profile, 'default') AS profile) FROM (
              SELECT * FROM rankings UNION ALL BY NAME
              SELECT CAST(NULL AS VARCHAR) AS profile WHERE false)) r
    JOIN papers p USING (arxiv_id, digest_date)
    WHERE r.selected
    QUALIFY row_number() OVER (PARTITION BY r.profile, r.digest_date ORDER BY r.rank) <= 3
) t USING (profile, digest_date)
GROUP BY g.profile, g.digest_date, g.paper_count;

-- name: term_views
-- Each key phrase's weekly share of papers (weeks start on Monday): papers using it that week
-- over the week's papers (term_week_counts, summed from the `terms` dataset at registration;
-- days stored before that dataset existed have no terms and are not counted).
CREATE OR REPLACE VIEW term_weeks AS
SELECT c.week, c.term, c.count, p.papers, round(c.count / p.papers, 6) AS share
FROM term_week_counts c JOIN term_week_papers p USING (week);
