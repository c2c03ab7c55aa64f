-- The DuckDB catalog: derived from the lake, rebuildable at any time (`arxiv-digest catalog rebuild`).
-- Run section by section by tasks/catalog.py create_schema. Column lists are not repeated here:
-- $columns / $column are filled with names and DuckDB types from the Arrow schemas
-- (RUNS_SCHEMA in tasks/catalog.py, SCHEMAS in tasks/lake.py).

-- name: existing_columns
-- The catalog's own tables and stand-ins as they are now: `schema.table` -> column names.
SELECT schema_name || '.' || table_name, list(column_name)
FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name IN ('main', 'empty')
GROUP BY ALL;

-- name: runs
-- One row per flow run (also stored in the lake under runs/, so a rebuild keeps the history).
CREATE TABLE IF NOT EXISTS runs (
    $columns,
    PRIMARY KEY (run_id),
    CHECK (flow IS NOT NULL AND started_at IS NOT NULL AND status IS NOT NULL)
);

-- name: runs_column
-- Catalogs made before a column of RUNS_SCHEMA existed get it (NULL in their older rows).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS $column;

-- name: days
-- One row per digest day the lake holds: its latest stage status and counts.
CREATE TABLE IF NOT EXISTS days (
    digest_date     DATE PRIMARY KEY,
    status          VARCHAR NOT NULL,      -- ingested | digested | digested-with-failures | failed
    query           VARCHAR,
    candidates      INTEGER,
    papers          INTEGER,
    dropped         INTEGER,
    config_hash     VARCHAR,
    last_run_id     VARCHAR,
    registered_at   TIMESTAMPTZ
);

-- name: empty_schema
-- Typed empty stand-ins, so every view exists (with the right columns) before the lake has data.
CREATE SCHEMA IF NOT EXISTS empty;

-- name: empty_table
-- $source: an empty Arrow table of the dataset's schema plus digest_date, registered on the
-- connection. Replaced when the schema gained columns since the catalog was made.
CREATE OR REPLACE TABLE empty.$table AS SELECT * FROM $source;

-- name: term_week_counts
-- Each key phrase's papers per week (weeks start on Monday), and each week's papers, summed
-- from the lake's `terms` when days are registered (tasks/catalog.py refresh_term_weeks):
-- weekly shares (view term_weeks) and sql/queries/emerging_terms.sql read these few rows
-- instead of every day's terms. Derived like everything here: `catalog rebuild` sums them all.
CREATE TABLE IF NOT EXISTS term_week_counts (week DATE, term VARCHAR, count INTEGER);
CREATE TABLE IF NOT EXISTS term_week_papers (week DATE PRIMARY KEY, papers INTEGER);
