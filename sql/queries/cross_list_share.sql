-- Per day, the share of a category's papers that are cross-lists from another primary (param: $category).
SELECT digest_date,
       count(*) AS papers,
       count(*) FILTER (WHERE primary_category <> $category) AS cross_listed,
       round(cross_listed / count(*), 4) AS cross_list_share
FROM papers
WHERE list_contains(categories, $category)
GROUP BY digest_date
ORDER BY digest_date;
