-- Terms rising in the weeks up to a digest day: the key phrases of titles and abstracts
-- (dataset `terms`, tasks/terms.py) whose share of papers in the last $weeks weeks grew most
-- against the $previous_weeks weeks before. Params all optional: $day, $weeks,
-- $previous_weeks, $min_support, $max_share, $smoothing, $limit. tasks/terms.py rising_terms
-- runs this same file (on the catalog, or on a day's lake before registration).
--
-- Windows, in weeks starting on Monday (view term_weeks, whole weeks): recent = the $weeks weeks ending
-- with the week of $day (default: the latest week with terms), previous = the
-- $previous_weeks weeks before them. Only days with terms count, in counts and denominators
-- alike (days stored before the dataset existed are left out, not read as silent days).
-- For a term: count = papers using it in the recent window (its support); share = count /
-- papers of the recent window; previous_share = the same over the previous window (0 when the
-- term is absent there, or the window holds no week). expected = previous_share * recent
-- papers, the papers it would have had at its old share. ratio = (count + $smoothing) /
-- (expected + $smoothing): observed over expected, smoothed by $smoothing pseudo-papers so a
-- term new with 3 papers ranks by how many papers use it, not as an infinite growth.
-- Left out: terms under $min_support papers; background terms, used by more than $max_share
-- of the recent window's papers (the field's own vocabulary, "image" in cs.CV, is no
-- direction); and a term two thirds of whose uses are inside a longer listed term ("language
-- model" when most papers using it say "large language model").
-- With no previous weeks (a lake of one day or week) there is no growth to measure: every
-- expected is 0, so the ranking is by count, and only phrases of two or three words are
-- listed (a single word's frequency alone says little: "prediction", "video"). These are the
-- window's most used distinctive phrases (boilerplate and generic words are no terms,
-- tasks/term_words.py).
-- default: $day = latest
-- default: $weeks = 4
-- default: $previous_weeks = 8
-- default: $min_support = 3
-- default: $max_share = 0.2
-- default: $smoothing = 1
-- default: $limit = 20
WITH params AS (
    SELECT CAST(date_trunc('week', CASE WHEN $day = 'latest'
                                        THEN (SELECT max(week) FROM term_week_papers)
                                        ELSE CAST($day AS DATE) END) AS DATE) AS last_week,
           7 * CAST($weeks AS INTEGER) AS recent_days,
           7 * CAST($previous_weeks AS INTEGER) AS previous_days
),
totals AS (
    SELECT coalesce(sum(w.papers) FILTER (WHERE w.week > p.last_week - p.recent_days), 0)
               AS recent_papers,
           coalesce(sum(w.papers) FILTER (WHERE w.week <= p.last_week - p.recent_days), 0)
               AS previous_papers
    FROM term_week_papers w, params p
    WHERE w.week <= p.last_week AND w.week > p.last_week - p.recent_days - p.previous_days
),
counted AS (
    SELECT w.term,
           coalesce(sum(w.count) FILTER (WHERE w.week > p.last_week - p.recent_days), 0)
               AS count,
           coalesce(sum(w.count) FILTER (WHERE w.week <= p.last_week - p.recent_days), 0)
               AS previous_count
    FROM term_week_counts w, params p
    WHERE w.week <= p.last_week AND w.week > p.last_week - p.recent_days - p.previous_days
    GROUP BY w.term
    HAVING count >= CAST($min_support AS INTEGER)
),
scored AS (
    SELECT c.term, c.count,
           c.count / t.recent_papers AS share,
           CASE WHEN t.previous_papers > 0 THEN c.previous_count / t.previous_papers
                ELSE 0 END AS previous_share,
           (c.count + CAST($smoothing AS DOUBLE))
               / (previous_share * t.recent_papers + CAST($smoothing AS DOUBLE)) AS ratio
    FROM counted c, totals t
    WHERE c.count <= CAST($max_share AS DOUBLE) * t.recent_papers
      AND (t.previous_papers > 0 OR contains(c.term, ' '))
),
-- A longer term has at most its parts' counts and close to their ratio when it holds most of
-- their uses: the parts to leave out are found among the best-ranked terms.
best AS (
    SELECT * FROM scored
    ORDER BY ratio DESC, count DESC, term
    LIMIT 10 * CAST($limit AS INTEGER) + 100
),
-- The shorter phrases inside each of those: a 3-word term's two 2-word and three 1-word
-- parts, a 2-word term's two words.
parts AS (
    SELECT count,
           unnest(CASE len(w) WHEN 2 THEN [w[1], w[2]]
                              WHEN 3 THEN [w[1], w[2], w[3], w[1] || ' ' || w[2],
                                           w[2] || ' ' || w[3]]
                              ELSE [] END) AS part
    FROM (SELECT count, string_split(term, ' ') AS w FROM best)
)
SELECT b.term, b.count, round(b.share, 6) AS share,
       round(b.previous_share, 6) AS previous_share, round(b.ratio, 4) AS ratio
FROM best b
LEFT JOIN (SELECT part, max(count) AS longer FROM parts GROUP BY part) l ON l.part = b.term
WHERE l.longer IS NULL OR 3 * l.longer < 2 * b.count
ORDER BY ratio DESC, b.count DESC, b.term
LIMIT CAST($limit AS INTEGER);
