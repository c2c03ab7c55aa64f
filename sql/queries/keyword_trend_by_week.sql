-- Weekly share of papers whose title or abstract mentions a keyword, any case (param: $keyword).
-- The answer of `count(*) FILTER (WHERE title ILIKE '%' || $keyword || '%' OR abstract ILIKE
-- '%' || $keyword || '%')` over papers, read from the catalog's search index (sql/search.sql):
-- ILIKE compares lower-cased text, so a keyword without whitespace or LIKE wildcards (`%`, `_`)
-- is in a paper exactly when one of its lower-cased words contains it. Any other keyword is
-- checked with ILIKE on the papers whose words contain each of its parts.
WITH keyword AS (
    SELECT list_filter(string_split_regex(lower($keyword), '[\t\n\f\r %_]+'), p -> p <> '')
               AS parts,
           regexp_matches($keyword, '[\t\n\f\r %_]') OR len(parts) = 0 AS needs_ilike
),
parts AS (
    SELECT unnest(parts) AS part, generate_subscripts(parts, 1) AS part_no FROM keyword
),
matched AS MATERIALIZED (  -- papers with a word containing each part (all, with no parts)
    SELECT wd.docid, wd.digest_date
    FROM parts JOIN search.words w ON contains(w.word, parts.part)
    JOIN search.word_docs wd USING (wordid)
    GROUP BY wd.docid, wd.digest_date
    HAVING count(DISTINCT parts.part_no) = (SELECT len(parts) FROM keyword)
    UNION ALL
    SELECT d.docid, d.digest_date FROM search.docs d, keyword WHERE len(keyword.parts) = 0
),
mentioning AS (
    SELECT digest_date FROM matched WHERE NOT (SELECT needs_ilike FROM keyword)
    UNION ALL
    -- Texts are read only when the keyword needs ILIKE (a join with nothing to join ends its
    -- scan); `c.docid < 0` (never true) keeps the test after the join, on candidates only.
    SELECT d.digest_date
    FROM (SELECT docid FROM matched WHERE (SELECT needs_ilike FROM keyword)) c
    JOIN search.docs d
        ON d.docid = c.docid
       AND (d.title ILIKE '%' || $keyword || '%' OR d.abstract ILIKE '%' || $keyword || '%'
            OR c.docid < 0)
),
weeks AS (
    SELECT date_trunc('week', digest_date) AS week, CAST(sum(papers) AS BIGINT) AS papers
    FROM search.day_papers GROUP BY week
),
mentions AS (
    SELECT date_trunc('week', digest_date) AS week, count(*) AS mentioning
    FROM mentioning GROUP BY week
)
SELECT w.week, w.papers, coalesce(m.mentioning, 0) AS mentioning,
       round(coalesce(m.mentioning, 0) / w.papers, 4) AS share
FROM weeks w LEFT JOIN mentions m USING (week)
ORDER BY w.week;
