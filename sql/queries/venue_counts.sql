-- Papers per venue and year as their comments state them (columns from tasks/enrich.py), with
-- how many say accepted (oral, spotlight, highlight and poster included), published or to
-- appear, under review or submitted, or no status; over digest days $start..$end (params
-- optional: every day by default). Days stored before enrichment existed have no venue.
-- default: $start = 0001-01-01
-- default: $end = 9999-12-31
SELECT venue, venue_year, count(*) AS papers,
       count(*) FILTER (WHERE venue_status IN ('accepted', 'oral', 'spotlight', 'highlight',
                                               'poster')) AS accepted,
       count(*) FILTER (WHERE venue_status IN ('published', 'to appear')) AS published,
       count(*) FILTER (WHERE venue_status IN ('under review', 'submitted')) AS under_review,
       count(*) FILTER (WHERE venue_status IS NULL) AS status_unstated,
       count(*) FILTER (WHERE len(code_urls) > 0) AS with_code,
       min(digest_date) AS first_seen, max(digest_date) AS last_seen
FROM papers
WHERE venue IS NOT NULL
  AND digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
GROUP BY venue, venue_year
ORDER BY papers DESC, venue, venue_year DESC NULLS LAST;
