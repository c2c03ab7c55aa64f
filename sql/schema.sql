-- The DuckDB catalog: derived from the lake, rebuildable at any time (`arxiv-digest catalog rebuild`).

-- One row per flow run (also stored in the lake under runs/, so a rebuild keeps the history).
CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,
    flow            VARCHAR NOT NULL,
    target_date     DATE,
    days            VARCHAR[],
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,      -- completed | failed
    candidates      INTEGER,
    papers_added    INTEGER,
    dropped         INTEGER,
    arxiv_requests  INTEGER,
    stage_seconds   VARCHAR,               -- JSON object: stage -> seconds
    error           VARCHAR
);

-- One row per digest day the lake holds: its latest stage status and counts.
CREATE TABLE IF NOT EXISTS days (
    digest_date     DATE PRIMARY KEY,
    status          VARCHAR NOT NULL,      -- ingested | ... (later stages extend it)
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
