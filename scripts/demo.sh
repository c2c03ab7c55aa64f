#!/usr/bin/env bash
# The README's demo command: set up, replay the bundled real arXiv day on loopback, start the
# local model (llama.cpp + SmolLM2-135M, no API key), and build the day's digest, lake and DuckDB
# catalog under ./data and ./output. Run it twice: the second run makes no LLM call.
# However it ends (done, failed, Ctrl-C, TERM), it stops the servers it started and their children.
# For tests: DEMO_SKIP_SETUP=1 skips set-up; DEMO_LLM=fake serves the deterministic fake model
# (tests/servers/fake_llm.py, options in DEMO_FAKE_LLM_ARGS) instead of the local one.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${DEMO_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 LITELLM_LOCAL_MODEL_COST_MAP=True
DAY=${DEMO_DATE:-2026-06-30}
logs=$(mktemp -d)
pids=()  # the servers, each the leader of its own process group (see start)

stop_servers() {  # TERM each server's whole group (llama.cpp runs under the local-model server)
  local pid alive
  for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 1 100); do  # up to 10 s for them to shut down cleanly, then KILL
    alive=
    for pid in ${pids[@]+"${pids[@]}"}; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in ${pids[@]+"${pids[@]}"}; do
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
cleanup() { trap - EXIT INT TERM; stop_servers; rm -rf "$logs"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

start() {  # start a loopback server in the background; sets $url to the URL it listens on
  local name=$1 pid; shift
  # Started from this shell (never inside $(...), whose pids the traps could not see), in a
  # process group of its own (set -m) that stop_servers ends with all its children. Ctrl-C
  # reaches the foreground run only; the INT trap stops the servers.
  : >"$logs/$name"  # exists before the server opens it: the loop below reads it at once
  set -m
  "$@" </dev/null >>"$logs/$name" 2>&1 &
  pid=$!
  set +m
  pids+=("$pid")
  url=
  for _ in $(seq 1 600); do
    url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$logs/$name" | head -n 1)
    [ -n "$url" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "$name did not start:" >&2; cat "$logs/$name" >&2; exit 1
}

start arxiv-replay .venv/bin/python -m tests.servers.arxiv_replay --port 0
arxiv_url=$url
echo "== arXiv replay of the recorded day $DAY at $arxiv_url"
if [ "${DEMO_LLM:-local}" = fake ]; then
  # shellcheck disable=SC2086  # DEMO_FAKE_LLM_ARGS holds several options
  start fake-llm .venv/bin/python -m tests.servers.fake_llm --port 0 ${DEMO_FAKE_LLM_ARGS:-}
  llm_url=$url llm_model=openai/fake-model
  echo "== fake model (tests/servers/fake_llm.py) at $llm_url"
else
  start local-llm .venv/bin/python -m arxiv_digest.local_llm --port 0
  llm_url=$url llm_model=openai/local-model
  echo "== local model (SmolLM2-135M-Instruct via llama.cpp) at $llm_url"
fi

# The embedded default: recorded arXiv, local lake + DuckDB, the local model. SmolLM2 writes
# English only, so the demo digest is in English; it serves one request at a time, so calls go
# one by one with a generous timeout; it cannot rank 25 papers at once (its indices and scores
# come back out of range), so the demo ranks with the documented offline heuristic and the
# model analyses the top 3 papers, picks their key findings and writes the executive summary.
export DIGEST_ARXIV_API_URL="$arxiv_url" DIGEST_ARXIV_DELAY_S=0 \
  DIGEST_LLM_MODEL=$llm_model DIGEST_LLM_API_BASE="$llm_url" \
  DIGEST_LANGUAGE=${DIGEST_LANGUAGE:-en} DIGEST_TOP_N=${DIGEST_TOP_N:-3} \
  DIGEST_LLM_CONCURRENCY=1 DIGEST_LLM_TIMEOUT_S=600 DIGEST_RANK_WITH=heuristic \
  DIGEST_FULLTEXT=false
.venv/bin/arxiv-digest run --date "$DAY"
out=${DIGEST_OUTPUT_DIR:-./output}
echo "== the digest: $out/$DAY.md (index: $out/README.md)"
# The run's publish step built the static site and the Atom feed from the lake too.
site=$(cd "$out/site" && pwd)
echo "== the site: open file://$site/$DAY.html (every digest: file://$site/index.html)"
echo "== the Atom feed: $out/feed.xml"
echo "== what landed (DuckDB catalog at ${DIGEST_DUCKDB_PATH:-./data/digest.duckdb})"
.venv/bin/arxiv-digest query "SELECT digest_date, count(*) AS papers, count(DISTINCT arxiv_id) AS distinct_ids FROM papers GROUP BY ALL ORDER BY ALL"
.venv/bin/arxiv-digest query --name dedup_report --param day="$DAY"
.venv/bin/arxiv-digest query --name emerging_terms --param limit=10
.venv/bin/arxiv-digest query "SELECT stage, count(*) FILTER (WHERE NOT cache_hit) AS calls, count(*) FILTER (WHERE cache_hit) AS cache_hits, sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out FROM llm_calls GROUP BY ALL ORDER BY ALL"
.venv/bin/arxiv-digest query --name day_status
