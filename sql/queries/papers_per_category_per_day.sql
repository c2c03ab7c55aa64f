-- Papers per category per digest day, cross-lists included (params: $start, $end as DATE).
-- Read from the catalog's search index (sql/search.sql: counted per day when it is indexed),
-- the same counts as over paper_categories.
SELECT digest_date, category, CAST(papers AS BIGINT) AS papers
FROM search.day_categories
WHERE digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
ORDER BY digest_date, papers DESC, category;
