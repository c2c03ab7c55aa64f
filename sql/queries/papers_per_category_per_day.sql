-- Papers per category per digest day, cross-lists included (params: $start, $end as DATE).
SELECT digest_date, category, count(*) AS papers
FROM paper_categories
WHERE digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
GROUP BY ALL
ORDER BY digest_date, papers DESC, category;
