-- Papers ranked by BM25 relevance of their title and abstract to $text, over digest days
-- $start..$end, the best $limit (params: $text, $start, $end, $limit). The fts extension's
-- match_bm25 with its defaults (k = 1.2, b = 0.75, any query term), over the catalog's search
-- index (sql/search.sql); `arxiv-digest search TEXT` runs it.
WITH query_terms AS (
    SELECT DISTINCT t.termid
    FROM search.terms t
    JOIN (SELECT DISTINCT stem(unnest(search.fts_tokens($text)), 'porter') AS term) q
        USING (term)
),
hits AS (
    SELECT p.termid, p.docid, p.tf, p.len, count(*) OVER (PARTITION BY p.termid) AS df
    FROM search.postings p JOIN query_terms USING (termid)
),
corpus AS (SELECT count(*) AS num_docs, avg(len) AS avgdl FROM search.docs),
in_range AS (
    SELECT docid FROM search.docs
    WHERE digest_date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
),
best AS (
    SELECT h.docid,
           sum(log((num_docs - df + 0.5) / (df + 0.5) + 1)
               * (tf * (1.2 + 1) / (tf + 1.2 * (1 - 0.75 + 0.75 * (len / avgdl))))) AS score
    FROM hits h, corpus
    WHERE h.docid IN (SELECT docid FROM in_range)
    GROUP BY h.docid
)
SELECT row_number() OVER (ORDER BY b.score DESC, d.arxiv_id) AS rank,
       round(b.score, 4) AS score, d.digest_date, d.arxiv_id, d.title
FROM best b JOIN search.docs d USING (docid)
ORDER BY rank
LIMIT CAST($limit AS INTEGER);
