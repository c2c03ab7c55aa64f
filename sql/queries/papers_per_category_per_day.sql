-- Papers per category per digest day, cross-lists included (params: $start, $end as DATE).
-- Reads the catalog's copy of papers (search.docs, sql/search.sql), as paper_categories does.
SELECT digest_date, category, count(*) AS papers
FROM (SELECT digest_date, unnest(categories) AS category FROM search.docs
      WHERE digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE))
GROUP BY ALL
ORDER BY digest_date, papers DESC, category;
