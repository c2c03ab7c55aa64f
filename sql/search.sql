-- The catalog's search index (schema `search`) and copies of whole datasets (schema `mirror`,
-- tasks/search.py MIRRORED), derived from the lake's files like every
-- catalog table: made whole by `catalog rebuild`, brought up to date by every registration for
-- the days whose papers files changed (tasks/search.py sync_search). It holds
--   docs       a copy of the papers (every column) with a number (docid) and a BM25 length, so
--              the named queries over years read one local table, not a year of Parquet files;
--   vocabulary, postings
--              BM25 postings built as the fts extension's create_fts_index builds them
--              (its tokenizer, its English stopwords, its Porter stemmer, title and abstract as
--              one document): the same scores as its match_bm25, but kept current a day at a
--              time instead of re-indexing every paper at every run;
--   words, word_docs
--              every whitespace-separated word of a title or abstract, lower-cased, and the
--              papers holding it: what a case-insensitive substring test (ILIKE) needs;
--   day_papers, day_categories, authors, paper_authors
--              papers per day, per day and category, and every author occurrence by number:
--              what the named queries over years count.
-- Sections run in order by tasks/search.py; `$name` values are bound as parameters.

-- name: schema
CREATE SCHEMA IF NOT EXISTS search;
CREATE SCHEMA IF NOT EXISTS mirror;
CREATE TABLE IF NOT EXISTS search.docs AS
SELECT CAST(NULL AS INTEGER) AS docid, CAST(NULL AS INTEGER) AS len, * FROM empty.papers LIMIT 0;
CREATE TABLE IF NOT EXISTS search.files (
    dataset VARCHAR, url VARCHAR, digest_date DATE, size BIGINT, mtime_ns BIGINT);
CREATE TABLE IF NOT EXISTS search.vocabulary (termid INTEGER, term VARCHAR);
CREATE TABLE IF NOT EXISTS search.postings (
    termid INTEGER, docid INTEGER, tf INTEGER, len INTEGER, digest_date DATE);
CREATE TABLE IF NOT EXISTS search.words (wordid INTEGER, word VARCHAR);
CREATE TABLE IF NOT EXISTS search.word_docs (wordid INTEGER, docid INTEGER, digest_date DATE);
CREATE TABLE IF NOT EXISTS search.day_papers (digest_date DATE, papers INTEGER);
CREATE TABLE IF NOT EXISTS search.day_categories (digest_date DATE, category VARCHAR, papers INTEGER);
CREATE TABLE IF NOT EXISTS search.authors (authorid INTEGER, author VARCHAR);
CREATE TABLE IF NOT EXISTS search.paper_authors (authorid INTEGER, digest_date DATE);
CREATE TABLE IF NOT EXISTS search.stopwords (sw VARCHAR);
CREATE TABLE IF NOT EXISTS search.state (sorted_through INTEGER);
-- Whitespace-separated pieces of a text, split where fts's tokenizer splits (RE2's \s).
CREATE OR REPLACE MACRO search.pieces(s) AS
    string_split(translate(CAST(s AS VARCHAR), chr(9) || chr(10) || chr(12) || chr(13), '    '),
                 ' ');
-- fts's tokenizer, as create_fts_index defines it (DuckDB 1.5): lower case, accents stripped,
-- digits and punctuation separate tokens. Applied piece by piece it gives the same tokens as on
-- the whole text (it splits at every place search.pieces does, and more).
CREATE OR REPLACE MACRO search.fts_tokens(s) AS
    string_split_regex(regexp_replace(lower(strip_accents(CAST(s AS VARCHAR))),
                                      '[0-9!@#$%^&*()_+={}\[\]:;<>,.?~\\/\|''''"`-]+', ' ', 'g'),
                       '\s+');

-- name: stored_files
SELECT url, digest_date, size, mtime_ns FROM search.files WHERE dataset = $dataset;

-- name: forget_files
DELETE FROM search.files
WHERE dataset = $dataset AND digest_date IN (SELECT unnest(CAST($days AS DATE[])));

-- name: forget_days
-- Everything the index holds for the digest days $days (their files changed or went away).
DELETE FROM search.postings WHERE digest_date IN (SELECT unnest(CAST($days AS DATE[])));
DELETE FROM search.word_docs WHERE digest_date IN (SELECT unnest(CAST($days AS DATE[])));
DELETE FROM search.paper_authors WHERE digest_date IN (SELECT unnest(CAST($days AS DATE[])));
DELETE FROM search.day_papers WHERE digest_date IN (SELECT unnest(CAST($days AS DATE[])));
DELETE FROM search.day_categories WHERE digest_date IN (SELECT unnest(CAST($days AS DATE[])));
DELETE FROM search.docs WHERE digest_date IN (SELECT unnest(CAST($days AS DATE[])));

-- name: stage_docs
-- The papers of the files $files, numbered after the last docid.
CREATE OR REPLACE TEMP TABLE new_docs AS
SELECT CAST((SELECT coalesce(max(docid), 0) FROM search.docs)
            + row_number() OVER (ORDER BY digest_date, arxiv_id) AS INTEGER) AS docid, *
FROM read_parquet($files, hive_partitioning = true, hive_types = {'digest_date': DATE},
                  union_by_name = true);

-- name: index_docs
-- Each new paper's pieces and how often each occurs (title and abstract together).
CREATE OR REPLACE TEMP TABLE new_pieces AS
SELECT docid, digest_date, piece, CAST(count(*) AS INTEGER) AS n
FROM (SELECT docid, digest_date, unnest(search.pieces(title)) AS piece FROM new_docs
      UNION ALL
      SELECT docid, digest_date, unnest(search.pieces(abstract)) AS piece FROM new_docs)
WHERE piece <> ''
GROUP BY docid, digest_date, piece;
-- Each distinct piece's terms as create_fts_index makes them: tokens, stopwords dropped before
-- stemming, Porter stems; k = how often the term comes out of the piece.
CREATE OR REPLACE TEMP TABLE new_piece_terms AS
SELECT piece, stem(token, 'porter') AS term, CAST(count(*) AS INTEGER) AS k
FROM (SELECT piece, unnest(search.fts_tokens(piece)) AS token
      FROM (SELECT DISTINCT piece FROM new_pieces))
WHERE token IS NOT NULL AND len(token) > 0 AND token NOT IN (SELECT sw FROM search.stopwords)
GROUP BY piece, term;
INSERT INTO search.vocabulary
SELECT CAST((SELECT coalesce(max(termid), 0) FROM search.vocabulary)
            + row_number() OVER (ORDER BY term) AS INTEGER), term
FROM (SELECT DISTINCT term FROM new_piece_terms
      WHERE term NOT IN (SELECT term FROM search.vocabulary));
-- tf: the term's occurrences in the paper; len: all its terms' occurrences (fts's docs.len).
CREATE OR REPLACE TEMP TABLE new_postings AS
SELECT t.termid, p.docid, p.digest_date, CAST(sum(p.n * pt.k) AS INTEGER) AS tf
FROM new_pieces p JOIN new_piece_terms pt USING (piece) JOIN search.vocabulary t USING (term)
GROUP BY t.termid, p.docid, p.digest_date;
CREATE OR REPLACE TEMP TABLE new_lengths AS
SELECT docid, CAST(sum(tf) AS INTEGER) AS len FROM new_postings GROUP BY docid;
INSERT INTO search.docs BY NAME
SELECT d.*, coalesce(l.len, 0) AS len FROM new_docs d LEFT JOIN new_lengths l USING (docid);
INSERT INTO search.postings
SELECT p.termid, p.docid, p.tf, l.len, p.digest_date
FROM new_postings p JOIN new_lengths l USING (docid);
INSERT INTO search.words
SELECT CAST((SELECT coalesce(max(wordid), 0) FROM search.words)
            + row_number() OVER (ORDER BY word) AS INTEGER), word
FROM (SELECT DISTINCT lower(piece) AS word FROM new_pieces
      WHERE lower(piece) NOT IN (SELECT word FROM search.words));
INSERT INTO search.word_docs
SELECT DISTINCT w.wordid, p.docid, p.digest_date
FROM new_pieces p JOIN search.words w ON w.word = lower(p.piece);
-- Counts: papers per day, unnested categories per day (count(*) of paper_categories), and
-- every author occurrence (count(*) of the unnested authors) by number.
INSERT INTO search.day_papers
SELECT digest_date, CAST(count(*) AS INTEGER) FROM new_docs GROUP BY digest_date;
INSERT INTO search.day_categories
SELECT digest_date, category, CAST(count(*) AS INTEGER)
FROM (SELECT digest_date, unnest(categories) AS category FROM new_docs)
GROUP BY ALL;
CREATE OR REPLACE TEMP TABLE new_authors AS
SELECT digest_date, unnest(authors) AS author FROM new_docs;
INSERT INTO search.authors
SELECT CAST((SELECT coalesce(max(authorid), 0) FROM search.authors)
            + row_number() OVER (ORDER BY author) AS INTEGER), author
FROM (SELECT DISTINCT author FROM new_authors
      WHERE author IS NOT NULL AND author NOT IN (SELECT author FROM search.authors));
INSERT INTO search.paper_authors
SELECT a.authorid, n.digest_date FROM new_authors n JOIN search.authors a USING (author);
DROP TABLE new_authors;
DROP TABLE new_pieces;
DROP TABLE new_piece_terms;
DROP TABLE new_postings;
DROP TABLE new_lengths;
DROP TABLE new_docs;

-- name: unsorted_rows
-- Postings of papers indexed since the last sort: a query scans them whole.
SELECT count(*) FROM search.postings
WHERE docid > coalesce((SELECT max(sorted_through) FROM search.state), -1);

-- name: sort_index
-- Postings and word lists in id order: a query's dynamic filter on termid / wordid then skips
-- every row group but those of its few terms (DuckDB's min/max zone maps).
CREATE OR REPLACE TABLE search.postings AS
SELECT * FROM search.postings ORDER BY termid, docid;
CREATE OR REPLACE TABLE search.word_docs AS
SELECT * FROM search.word_docs ORDER BY wordid, docid;
DELETE FROM search.state;
INSERT INTO search.state SELECT coalesce(max(docid), 0) FROM search.docs;

-- name: mirror_table
-- A dataset copied whole into schema mirror (tasks/search.py MIRRORED), typed by its empty
-- stand-in; $table is filled in by name.
CREATE TABLE IF NOT EXISTS mirror.$table AS SELECT * FROM empty.$table LIMIT 0;

-- name: mirror_forget
DELETE FROM mirror.$table WHERE digest_date IN (SELECT unnest(CAST($days AS DATE[])));

-- name: mirror_stage
CREATE OR REPLACE TEMP TABLE new_rows AS
SELECT * FROM read_parquet($files, hive_partitioning = true, hive_types = {'digest_date': DATE},
                           union_by_name = true);

-- name: mirror_insert
INSERT INTO mirror.$table BY NAME SELECT * FROM new_rows;
DROP TABLE new_rows;
