-- Why candidates were dropped on one digest day, with examples (param: $day).
-- Reads the catalog's copy of dedup_log (sql/search.sql): one local table, not a file per day.
SELECT reason,
       count(*) AS dropped,
       count(DISTINCT arxiv_id) AS papers,
       list(DISTINCT arxiv_id ORDER BY arxiv_id)[1:5] AS examples,
       any_value(detail) AS sample_detail
FROM mirror.dedup_log
WHERE digest_date = CAST($day AS DATE)
GROUP BY reason
ORDER BY dropped DESC, reason;
