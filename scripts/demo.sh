#!/usr/bin/env bash
# The README's demo command: set up, replay the bundled real arXiv day on loopback, start the
# local model (llama.cpp + SmolLM2-135M, no API key), and build the day's digest, lake and DuckDB
# catalog under ./data and ./output. Run it twice: the second run makes no LLM call.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 LITELLM_LOCAL_MODEL_COST_MAP=True
DAY=${DEMO_DATE:-2026-06-30}
logs=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$logs"' EXIT

start() {  # start a loopback server in the background and print the URL it listens on
  local name=$1; shift
  "$@" >"$logs/$name" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do
    grep -q "listening on" "$logs/$name" && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.2
  done
  local url
  url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$logs/$name" | head -n 1)
  [ -n "$url" ] || { echo "$name did not start:" >&2; cat "$logs/$name" >&2; exit 1; }
  echo "$url"
}

arxiv_url=$(start arxiv-replay .venv/bin/python -m tests.servers.arxiv_replay --port 0)
echo "== arXiv replay of the recorded day $DAY at $arxiv_url"
llm_url=$(start local-llm .venv/bin/python -m arxiv_digest.local_llm --port 0)
echo "== local model (SmolLM2-135M-Instruct via llama.cpp) at $llm_url"

# The embedded default: recorded arXiv, local lake + DuckDB, the local model. SmolLM2 writes
# English only, so the demo digest is in English; it serves one request at a time, so calls go
# one by one with a generous timeout; it cannot rank 25 papers at once (its indices and scores
# come back out of range), so the demo ranks with the documented offline heuristic and the
# model analyses the top 3 papers, picks their key findings and writes the executive summary.
export DIGEST_ARXIV_API_URL="$arxiv_url" DIGEST_ARXIV_DELAY_S=0 \
  DIGEST_LLM_MODEL=openai/local-model DIGEST_LLM_API_BASE="$llm_url" \
  DIGEST_LANGUAGE=${DIGEST_LANGUAGE:-en} DIGEST_TOP_N=${DIGEST_TOP_N:-3} \
  DIGEST_LLM_CONCURRENCY=1 DIGEST_LLM_TIMEOUT_S=600 DIGEST_RANK_WITH=heuristic \
  DIGEST_FULLTEXT=false
.venv/bin/arxiv-digest run --date "$DAY"
echo "== the digest: ${DIGEST_OUTPUT_DIR:-./output}/$DAY.md (index: ${DIGEST_OUTPUT_DIR:-./output}/README.md)"
echo "== what landed (DuckDB catalog at ${DIGEST_DUCKDB_PATH:-./data/digest.duckdb})"
.venv/bin/arxiv-digest query "SELECT digest_date, count(*) AS papers, count(DISTINCT arxiv_id) AS distinct_ids FROM papers GROUP BY ALL ORDER BY ALL"
.venv/bin/arxiv-digest query --name dedup_report --param day="$DAY"
.venv/bin/arxiv-digest query "SELECT stage, count(*) FILTER (WHERE NOT cache_hit) AS calls, count(*) FILTER (WHERE cache_hit) AS cache_hits, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out FROM llm_calls GROUP BY ALL ORDER BY ALL"
.venv/bin/arxiv-digest query --name day_status
