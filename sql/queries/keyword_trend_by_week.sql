-- Weekly share of papers whose title or abstract mentions a keyword (param: $keyword).
SELECT date_trunc('week', digest_date) AS week,
       count(*) AS papers,
       count(*) FILTER (WHERE title ILIKE '%' || $keyword || '%'
                           OR abstract ILIKE '%' || $keyword || '%') AS mentioning,
       round(mentioning / count(*), 4) AS share
FROM papers
GROUP BY week
ORDER BY week;
