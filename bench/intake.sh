#!/usr/bin/env bash
# Intake benchmark: our `asynccode serve` (release) and the peer receiver (Python: gidgethub + aiohttp +
# asyncpg) side by side, on one PostgreSQL with durable settings (fsync on, synchronous_commit on),
# plus pgbench running the peer's single-row INSERT at the same concurrency: the ceiling for one commit
# per delivery. Prints req/s, p50 and p99 for each, and the ratios. Loopback only; bounded in time.
#
#   bench/intake.sh [seconds per run, default 15] [connections, default 16]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${1:-15}"
CONNECTIONS="${2:-16}"
PEER_DIR="${ASYNCCODE_PEER_DIR:-$ROOT/bench/peer}"
PAYLOAD="$ROOT/Tests/Fixtures/webhooks/issue_comment/created.with-installation.payload.json"
SECRET="It's a Secret to Everybody"
OUR_PORT=3911
PEER_PORT=3912
OUT="$ROOT/.local/bench"
mkdir -p "$OUT"
say() { printf 'bench: %s\n' "$*" >&2; }

[ -f "$PEER_DIR/peer_gidgethub.py" ] || { say "peer not found at $PEER_DIR (set ASYNCCODE_PEER_DIR)"; exit 1; }

# Tools: wrk and pgbench (Debian), a venv for the peer (PyPI).
need=()
command -v wrk >/dev/null || need+=(wrk)
dpkg -s python3-venv >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
"$ROOT/scripts/setup"
# shellcheck disable=SC1091
. "$ROOT/.local/postgres/env"
PGPASSWORD="$(cat .local/postgres/password)"; export PGPASSWORD
PGPORT="$(cat .local/postgres/port)"
PSQL=(psql -X -q -h 127.0.0.1 -p "$PGPORT" -U asynccode)
if [ "$("${PSQL[@]}" -d postgres -tAc 'SHOW fsync')" != on ] || [ "$("${PSQL[@]}" -d postgres -tAc 'SHOW synchronous_commit')" != on ]; then
  say "restarting PostgreSQL with durable settings (fsync and synchronous_commit on)"
  if [ "$(id -u)" = 0 ]; then RUN=(runuser -u postgres --); else RUN=(); fi
  "${RUN[@]}" "$ASYNCCODE_PG_BIN/pg_ctl" -D "$ASYNCCODE_PG_DATA" -m fast -w stop >/dev/null
  "$ROOT/scripts/setup"
fi

VENV="$ROOT/.local/bench-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import gidgethub, aiohttp, asyncpg' 2>/dev/null; then
  say "installing the peer's Python packages"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$PEER_DIR/requirements.txt"
fi

say "building asynccode (release)"
swift build -c release --product asynccode -q
BIN="$(swift build -c release --show-bin-path)/asynccode"

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS asynccode_bench WITH (FORCE)" -c "CREATE DATABASE asynccode_bench"
DB_URL="postgres://asynccode:$PGPASSWORD@127.0.0.1:$PGPORT/asynccode_bench"
SIG="sha256=$(python3 -c "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), open(sys.argv[2],'rb').read(), hashlib.sha256).hexdigest())" "$SECRET" "$PAYLOAD")"
BAD_SIG="sha256=$(printf '0%.0s' $(seq 64))"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

DATABASE_URL="$DB_URL" GITHUB_WEBHOOK_SECRET="$SECRET" PORT=$OUR_PORT LOG_LEVEL="${BENCH_LOG_LEVEL:-info}" \
  ASYNCCODE_MIGRATIONS_DIR="$ROOT/migrations" "$BIN" serve > "$OUT/ours.log" 2>&1 &
pids+=($!); OUR_PID=$!
PG_DSN="$DB_URL" PORT=$PEER_PORT WEBHOOK_SECRET="$SECRET" POOL="$CONNECTIONS" "$VENV/bin/python" "$PEER_DIR/peer_gidgethub.py" > "$OUT/peer.log" 2>&1 &
pids+=($!); PEER_PID=$!
for url in "http://127.0.0.1:$OUR_PORT/readyz" "http://127.0.0.1:$PEER_PORT/"; do
  for _ in $(seq 200); do curl -s -o /dev/null "$url" && break; sleep 0.1; done
done
curl -sf -o /dev/null "http://127.0.0.1:$OUR_PORT/readyz" || { say "asynccode did not start; see $OUT/ours.log"; exit 1; }

run_wrk() { # name url path sig
  BODY_FILE="$PAYLOAD" SIG="$4" EVENT=issue_comment WEBHOOK_PATH="$3" \
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$PEER_DIR/post_signed.lua" "$2" > "$OUT/$1.txt" 2>&1
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$1.txt")
  p50=$(grep -o 'p50=[0-9.]*' "$OUT/$1.txt" | cut -d= -f2)
  p99=$(grep -o 'p99=[0-9.]*' "$OUT/$1.txt" | cut -d= -f2)
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$OUT/$1.txt"); non2xx=${non2xx:-0}
  printf '%-28s %10s req/s   p50 %7s ms   p99 %7s ms   non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "$non2xx"
  echo "$rps" > "$OUT/$1.rps"
}

say "warming up (both receivers, at the measured concurrency, so pools and caches are full)"
BODY_FILE="$PAYLOAD" SIG="$SIG" EVENT=issue_comment WEBHOOK_PATH=/webhooks/github wrk -t2 -c"$CONNECTIONS" -d5s -s "$PEER_DIR/post_signed.lua" "http://127.0.0.1:$OUR_PORT" >/dev/null
BODY_FILE="$PAYLOAD" SIG="$SIG" EVENT=issue_comment WEBHOOK_PATH=/webhook wrk -t2 -c"$CONNECTIONS" -d5s -s "$PEER_DIR/post_signed.lua" "http://127.0.0.1:$PEER_PORT" >/dev/null

echo "== intake: 16 KB issue_comment, valid signatures, unique delivery ids, $CONNECTIONS connections, ${DURATION}s each =="
echo "   PostgreSQL: fsync=$("${PSQL[@]}" -d postgres -tAc 'SHOW fsync') synchronous_commit=$("${PSQL[@]}" -d postgres -tAc 'SHOW synchronous_commit'); machine: $(nproc) cores"
run_wrk peer "http://127.0.0.1:$PEER_PORT" /webhook "$SIG"
run_wrk asynccode "http://127.0.0.1:$OUR_PORT" /webhooks/github "$SIG"
run_wrk peer-2 "http://127.0.0.1:$PEER_PORT" /webhook "$SIG"
run_wrk asynccode-2 "http://127.0.0.1:$OUR_PORT" /webhooks/github "$SIG"
run_wrk asynccode-bad-signature "http://127.0.0.1:$OUR_PORT" /webhooks/github "$BAD_SIG"
run_wrk peer-bad-signature "http://127.0.0.1:$PEER_PORT" /webhook "$BAD_SIG"

# pgbench: the peer's single-row INSERT of the same payload, same concurrency.
python3 - "$PAYLOAD" <<'PY' | "${PSQL[@]}" -d asynccode_bench >/dev/null
import sys
body = open(sys.argv[1], 'rb').read().decode()
print("CREATE TABLE IF NOT EXISTS bench_payload (p text); TRUNCATE bench_payload;")
print("INSERT INTO bench_payload VALUES ($pl$" + body + "$pl$);")
PY
cat > "$OUT/pgbench.sql" <<'SQL'
INSERT INTO peer_deliveries(delivery_id, event, action, installation_id, payload)
SELECT md5(random()::text || clock_timestamp()::text), 'issue_comment', 'created', 1, p::jsonb FROM bench_payload;
SQL
PGBENCH="$ASYNCCODE_PG_BIN/pgbench"
"$PGBENCH" -n -h 127.0.0.1 -p "$PGPORT" -U asynccode -c "$CONNECTIONS" -j 2 -T "$DURATION" -f "$OUT/pgbench.sql" asynccode_bench > "$OUT/pgbench.txt" 2>&1
PGB_TPS=$(awk '/^tps/ {print $3; exit}' "$OUT/pgbench.txt")
PGB_LAT=$(awk '/latency average/ {print $4}' "$OUT/pgbench.txt")
printf '%-28s %10s tps     avg %7s ms\n' "pgbench single-row INSERT" "$PGB_TPS" "$PGB_LAT"

OUR_RSS=$(ps -o rss= -p "$OUR_PID" | tr -d ' '); PEER_RSS=$(ps -o rss= -p "$PEER_PID" | tr -d ' ')
echo "memory after the runs (RSS): asynccode $((OUR_RSS / 1024)) MiB, peer $((PEER_RSS / 1024)) MiB"
ROWS=$("${PSQL[@]}" -d asynccode_bench -tAc "SELECT count(*) FROM webhook_deliveries")
echo "rows written by asynccode: $ROWS"
python3 - "$OUT" "$PGB_TPS" <<'PY'
import sys, os
out, pgb = sys.argv[1], float(sys.argv[2])
r = lambda n: float(open(os.path.join(out, n + ".rps")).read())
ours = (r("asynccode") + r("asynccode-2")) / 2
peer = (r("peer") + r("peer-2")) / 2
print(f"ratios: asynccode/peer {ours/peer:.2f}x   asynccode/pgbench {ours/pgb:.2f}x   peer/pgbench {peer/pgb:.2f}x   "
      f"bad-signature asynccode/peer {r('asynccode-bad-signature')/r('peer-bad-signature'):.2f}x")
PY
