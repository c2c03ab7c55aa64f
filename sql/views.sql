-- Views over the lake. `$table` and `$glob` are filled in per dataset by tasks/catalog.py
-- ($glob as a quoted SQL string literal, so any lake path works).

-- name: lake_view
CREATE OR REPLACE VIEW $table AS
SELECT * FROM read_parquet($glob, hive_partitioning = true,
                           hive_types = {'digest_date': DATE}, union_by_name = true);

-- name: empty_view
CREATE OR REPLACE VIEW $table AS SELECT * FROM empty.$table;

-- name: derived_views
-- One row per (paper, category): the shape most analyst questions want.
CREATE OR REPLACE VIEW paper_categories AS
SELECT digest_date, arxiv_id, unnest(categories) AS category, primary_category
FROM papers;
