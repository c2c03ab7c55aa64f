-- Per day, the share of a category's papers that are cross-lists from another primary (param: $category).
-- Reads the catalog's copy of papers (search.docs, sql/search.sql): one local table over years.
SELECT digest_date,
       count(*) AS papers,
       count(*) FILTER (WHERE primary_category <> $category) AS cross_listed,
       round(cross_listed / count(*), 4) AS cross_list_share
FROM search.docs
WHERE list_contains(categories, $category)
GROUP BY digest_date
ORDER BY digest_date;
