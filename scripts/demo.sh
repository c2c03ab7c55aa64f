#!/usr/bin/env bash
# The README's demo command: set up, replay the bundled arXiv day on loopback, build its digest
# into ./data (lake + DuckDB), and show what landed. Run it twice: the lake stays byte-identical.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 LITELLM_LOCAL_MODEL_COST_MAP=True
DAY=${DEMO_DATE:-2026-06-30}
log=$(mktemp)
.venv/bin/python -m tests.servers.arxiv_replay --port 0 >"$log" 2>&1 &
replay_pid=$!
trap 'kill $replay_pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$log" && break
  sleep 0.1
done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -n 1)
[ -n "$url" ] || { echo "the arXiv replay server did not start:"; cat "$log"; exit 1; }
echo "== arXiv replay (recorded day $DAY) at $url"
export DIGEST_ARXIV_API_URL="$url" DIGEST_ARXIV_DELAY_S=0
.venv/bin/arxiv-digest run --date "$DAY" --ingest-only
echo "== what landed (DuckDB catalog at ${DIGEST_DUCKDB_PATH:-./data/digest.duckdb})"
.venv/bin/arxiv-digest query "SELECT digest_date, count(*) AS papers, count(DISTINCT arxiv_id) AS distinct_ids FROM papers GROUP BY ALL ORDER BY ALL"
.venv/bin/arxiv-digest query --name dedup_report --param day="$DAY"
.venv/bin/arxiv-digest query --name day_status
