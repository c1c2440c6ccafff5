#!/usr/bin/env bash
# What authentication costs: the same server and workload with the token check on, then off
# (bench/without_auth.py), alternating, on a database of 100,000 users.
#   DB_DSN=postgresql://postgres@127.0.0.1:5432/user_service_bench bench/auth_cost.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DB_DSN:?set DB_DSN to a PostgreSQL database the benchmark may fill}"
export DB_DSN LOG_FORMAT=json USERS=100000 PYTHONPATH=.
rounds=${1:-2} port=8911 workers=2 py=.venv/bin/python
command -v wrk >/dev/null || { echo "needs wrk (Debian: apt-get install wrk)"; exit 1; }

.venv/bin/user-service migrate 2>/dev/null
$py - <<'PY'
import asyncio, os, asyncpg
async def seed():
    db = await asyncpg.connect(os.environ["DB_DSN"])
    await db.execute("TRUNCATE users RESTART IDENTITY")
    await db.execute("INSERT INTO users (nickname) SELECT 'user ' || g FROM generate_series(1, 100000) g")
    await db.execute("VACUUM ANALYZE users")
    await db.close()
asyncio.run(seed())
PY
TOKEN=$(.venv/bin/user-service tokens create --name "bench-$$" --scopes users:read,users:write 2>/dev/null)
export TOKEN

measure() {  # variant app scenario
  $py bench/serve.py "$2" --port $port --workers $workers >/tmp/bench-server.log 2>&1 &
  local server=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
  wrk -t2 -c64 -d5s -s "bench/$3.lua" "http://127.0.0.1:$port" >/dev/null  # warm-up
  local out
  out=$(wrk -t2 -c64 -d15s --latency -s "bench/$3.lua" "http://127.0.0.1:$port")
  kill -TERM $server; wait $server || true
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
  printf "%-5s %-4s %10s req/s  p50 %8s  p99 %8s  %s\n" "$1" "$3" "$rps" "$p50" "$p99" "${errors:-no errors}"
}

for round in $(seq "$rounds"); do
  for scenario in get post; do
    measure on user_service.asgi:app $scenario
    measure off bench.without_auth:app $scenario
  done
done
