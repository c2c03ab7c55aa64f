-- The most prolific authors over a date range (params: $start, $end, $limit).
-- Counts every author occurrence of the papers of those days, as unnesting papers.authors does,
-- from the catalog's search index (sql/search.sql: authors by number, one local table over years);
-- only the authors at or above the $limit-th count are named and ordered.
WITH counts AS MATERIALIZED (
    SELECT authorid, count(*) AS papers,
           min(digest_date) AS first_seen, max(digest_date) AS last_seen
    FROM search.paper_authors
    WHERE digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
    GROUP BY authorid
),
cut AS (
    SELECT min(papers) AS papers
    FROM (SELECT papers FROM counts ORDER BY papers DESC LIMIT CAST($limit AS INTEGER))
)
SELECT a.author, c.papers, c.first_seen, c.last_seen
FROM counts c JOIN search.authors a USING (authorid)
WHERE c.papers >= (SELECT papers FROM cut)
ORDER BY c.papers DESC, a.author
LIMIT CAST($limit AS INTEGER);
