-- Weekly share of papers whose title or abstract mentions a keyword, any case (param: $keyword).
-- The answer of `count(*) FILTER (WHERE title ILIKE '%' || $keyword || '%' OR abstract ILIKE
-- '%' || $keyword || '%')` over papers, read from the catalog's word index (sql/search.sql):
-- ILIKE compares lower-cased text, so a keyword without whitespace or LIKE wildcards (`%`, `_`)
-- is in a paper exactly when one of its lower-cased words contains it. Any other keyword is
-- checked with ILIKE on the papers whose words contain each of its parts.
WITH keyword AS (
    SELECT list_filter(string_split_regex(lower($keyword), '[\t\n\f\r %_]+'), p -> p <> '')
               AS parts,
           regexp_matches($keyword, '[\t\n\f\r %_]') AS needs_ilike
),
parts AS (
    SELECT unnest(parts) AS part, generate_subscripts(parts, 1) AS part_no FROM keyword
),
candidates AS (
    SELECT wd.docid
    FROM parts JOIN search.words w ON contains(w.word, parts.part)
    JOIN search.word_docs wd USING (wordid)
    GROUP BY wd.docid
    HAVING count(DISTINCT parts.part_no) = (SELECT len(parts) FROM keyword)
    UNION ALL
    SELECT docid FROM search.docs WHERE (SELECT len(parts) FROM keyword) = 0
),
mentioning AS (
    SELECT docid FROM candidates WHERE NOT (SELECT needs_ilike FROM keyword)
    UNION ALL
    -- Texts are read only when the keyword needs ILIKE (a join with nothing to join ends its
    -- scan); `c.docid < 0` (never true) keeps the test after the join, on candidates only.
    SELECT c.docid
    FROM (SELECT docid FROM candidates WHERE (SELECT needs_ilike FROM keyword)) c
    JOIN search.docs d
        ON d.docid = c.docid
       AND (d.title ILIKE '%' || $keyword || '%' OR d.abstract ILIKE '%' || $keyword || '%'
            OR c.docid < 0)
)
SELECT date_trunc('week', d.digest_date) AS week,
       count(*) AS papers,
       count(m.docid) AS mentioning,
       round(mentioning / count(*), 4) AS share
FROM search.docs d LEFT JOIN mentioning m USING (docid)
GROUP BY week
ORDER BY week;
