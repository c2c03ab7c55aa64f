-- Papers per category per week (weeks start on Monday; a cross-listed paper counts in each of
-- its categories), with the category's share of the week's papers, over the last $weeks weeks
-- of the lake (param optional).
-- default: $weeks = 52
WITH recent AS (
    SELECT CAST(date_trunc('week', digest_date) AS DATE) AS week, categories
    FROM papers
    WHERE digest_date > (SELECT max(digest_date) FROM papers) - 7 * CAST($weeks AS INTEGER)
),
totals AS (SELECT week, count(*) AS week_papers FROM recent GROUP BY week)
SELECT c.week, c.category, count(*) AS papers, t.week_papers,
       round(count(*) / t.week_papers, 4) AS share
FROM (SELECT week, unnest(categories) AS category FROM recent) c JOIN totals t USING (week)
GROUP BY c.week, c.category, t.week_papers
ORDER BY c.week, papers DESC, c.category;
