-- Papers ranked by BM25 relevance of their title and abstract to $text, over digest days
-- $start..$end, the best $limit (params: $text, $start, $end, $limit). The fts extension's
-- match_bm25 with its defaults (k = 1.2, b = 0.75, any query term), over the catalog's search
-- index (sql/search.sql); `arxiv-digest search TEXT` runs it.
WITH query_terms AS (
    SELECT DISTINCT t.termid
    FROM search.vocabulary t
    JOIN (SELECT DISTINCT stem(unnest(search.fts_tokens($text)), 'porter') AS term) q
        USING (term)
),
hits AS (  -- df over every paper, as the index's statistics: the date range filters after
    SELECT p.docid, p.tf, p.len, p.digest_date,
           CAST(count(*) OVER (PARTITION BY p.termid) AS DOUBLE) AS df
    FROM search.postings p JOIN query_terms USING (termid)
),
corpus AS (  -- in DOUBLE from here (DECIMAL arithmetic is several times slower)
    SELECT CAST(count(*) AS DOUBLE) AS num_docs, avg(len) AS avgdl,
           1.2::DOUBLE AS k, 0.75::DOUBLE AS b
    FROM search.docs
),
scores AS MATERIALIZED (
    SELECT h.docid,
           sum(log((num_docs - df + 0.5) / (df + 0.5) + 1)
               * (tf * (k + 1) / (tf + k * (1 - b + b * (len / avgdl))))) AS score
    FROM hits h, corpus
    WHERE h.digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
    GROUP BY h.docid
),
cut AS (  -- the $limit-th best score: only papers at or above it are named and numbered
    SELECT min(score) AS score
    FROM (SELECT score FROM scores ORDER BY score DESC LIMIT CAST($limit AS INTEGER))
),
best AS MATERIALIZED (SELECT docid, score FROM scores WHERE score >= (SELECT score FROM cut))
SELECT row_number() OVER (ORDER BY b.score DESC, d.arxiv_id) AS rank,
       round(b.score, 4) AS score, d.digest_date, d.arxiv_id, d.title
FROM best b JOIN search.docs d USING (docid)
ORDER BY rank
LIMIT CAST($limit AS INTEGER);
