-- The most prolific authors over a date range (params: $start, $end, $limit).
-- Reads the catalog's copy of papers (search.docs, sql/search.sql): one local table over years.
SELECT author, count(*) AS papers, min(digest_date) AS first_seen, max(digest_date) AS last_seen
FROM (SELECT digest_date, unnest(authors) AS author FROM search.docs
      WHERE digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE))
GROUP BY author
ORDER BY papers DESC, author
LIMIT CAST($limit AS INTEGER);
