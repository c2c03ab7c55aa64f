-- The DuckDB catalog: derived from the lake, rebuildable at any time (`arxiv-digest catalog rebuild`).

-- One row per flow run (also stored in the lake under runs/, so a rebuild keeps the history).
CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,
    flow            VARCHAR NOT NULL,
    target_date     DATE,
    days            VARCHAR[],
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,      -- running | completed | failed | died
    candidates      INTEGER,
    papers_added    INTEGER,
    dropped         INTEGER,
    arxiv_requests  INTEGER,
    llm_calls       INTEGER,               -- LLM requests actually sent (cache hits excluded)
    cost_usd        DOUBLE,
    stage_seconds   VARCHAR,               -- JSON object: stage -> seconds
    error           VARCHAR,
    host            VARCHAR,               -- where the run ran (process `pid`)
    pid             BIGINT,
    heartbeat_at    TIMESTAMPTZ            -- its last sign of life
);
-- Catalogs made before these columns existed.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS host VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS heartbeat_at TIMESTAMPTZ;

-- One row per digest day the lake holds: its latest stage status and counts.
CREATE TABLE IF NOT EXISTS days (
    digest_date     DATE PRIMARY KEY,
    status          VARCHAR NOT NULL,      -- ingested | digested | digested-with-failures | failed
    query           VARCHAR,
    candidates      INTEGER,
    papers          INTEGER,
    dropped         INTEGER,
    config_hash     VARCHAR,
    last_run_id     VARCHAR,
    registered_at   TIMESTAMPTZ
);

-- Typed empty stand-ins, so every view exists (with the right columns) before the lake has data.
CREATE SCHEMA IF NOT EXISTS empty;

CREATE TABLE IF NOT EXISTS empty.papers (
    arxiv_id VARCHAR, version INTEGER, title VARCHAR, authors VARCHAR[], abstract VARCHAR,
    categories VARCHAR[], primary_category VARCHAR, published TIMESTAMPTZ, updated TIMESTAMPTZ,
    comment VARCHAR, journal_ref VARCHAR, doi VARCHAR, abs_url VARCHAR, pdf_url VARCHAR,
    digest_date DATE
);

CREATE TABLE IF NOT EXISTS empty.dedup_log (
    arxiv_id VARCHAR, version INTEGER, reason VARCHAR, detail VARCHAR, candidate_index INTEGER,
    occurrence INTEGER, digest_date DATE
);

CREATE TABLE IF NOT EXISTS empty.day_manifests (
    status VARCHAR, query VARCHAR, candidates INTEGER, papers INTEGER, dropped INTEGER,
    config_hash VARCHAR, digest_date DATE
);

CREATE TABLE IF NOT EXISTS empty.rankings (
    arxiv_id VARCHAR, score DOUBLE, source VARCHAR, rank INTEGER, selected BOOLEAN,
    digest_date DATE
);

CREATE TABLE IF NOT EXISTS empty.analyses (
    arxiv_id VARCHAR, version INTEGER, template VARCHAR, language VARCHAR, fields_json VARCHAR,
    markdown VARCHAR, status VARCHAR, error VARCHAR, digest_date DATE
);

CREATE TABLE IF NOT EXISTS empty.key_findings (
    arxiv_id VARCHAR, ordinal INTEGER, sentence VARCHAR, start_offset INTEGER,
    end_offset INTEGER, source VARCHAR, digest_date DATE
);

CREATE TABLE IF NOT EXISTS empty.digests (
    topic VARCHAR, language VARCHAR, markdown VARCHAR, executive_summary VARCHAR,
    summary_status VARCHAR, paper_count INTEGER, content_hash VARCHAR, config_hash VARCHAR,
    llm_failed INTEGER, llm_invalid INTEGER, digest_date DATE
);

CREATE TABLE IF NOT EXISTS empty.llm_cache (
    cache_key VARCHAR, stage VARCHAR, subject VARCHAR, content VARCHAR, digest_date DATE
);

CREATE TABLE IF NOT EXISTS empty.llm_calls (
    call_id VARCHAR, run_id VARCHAR, stage VARCHAR, subject VARCHAR, model VARCHAR,
    prompt_hash VARCHAR, cache_key VARCHAR, cache_hit BOOLEAN, tokens_in INTEGER,
    tokens_out INTEGER, cost_usd DOUBLE, latency_ms DOUBLE, attempts INTEGER, status VARCHAR,
    error VARCHAR, digest_date DATE
);
