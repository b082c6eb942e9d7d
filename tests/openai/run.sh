#!/usr/bin/env bash
# The official openai npm client against a real `kvq serve` on loopback (stories15M, 4 slots, q8_0/q4_0),
# then a bounded load test; the server must drain and exit 0 on SIGTERM.
# Usage: tests/openai/run.sh path/to/kvq        (scripts/setup.sh installs the pinned client)
set -euo pipefail
kvq="$(realpath "$1")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shared="$(cd "$here/../../../shared" && pwd)"
if [ ! -d "$here/node_modules/openai" ]; then
  echo "tests/openai: the openai client is not installed; run scripts/setup.sh (npm ci in tests/openai)" >&2
  exit 1
fi
model="$shared/data/models/stories15M/stories15M.gguf"
template="$shared/data/chat-templates/templates/microsoft-Phi-3.5-mini-instruct.jinja"
log="$(mktemp)"
"$kvq" serve -m "$model" --port 0 --parallel 4 -c 512 --queue 64 -ctk q8_0 -ctv q4_0 \
  --chat-template "$template" 2>"$log" &
server=$!
trap 'kill -9 $server 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 200); do
  port="$(sed -n 's/.*on http:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log")"
  [ -n "$port" ] && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "kvq serve did not start" >&2; cat "$log" >&2; exit 1; }
KVQ_URL="http://127.0.0.1:$port" KVQ_BIN="$kvq" KVQ_MODEL="$model" KVQ_SERVER_PID=$server \
  node --test --test-reporter=spec "$here/client_test.mjs"
kill -TERM $server
status=0
wait $server || status=$?
[ $status -eq 0 ] || { echo "kvq serve exited with $status after SIGTERM" >&2; cat "$log" >&2; exit 1; }
echo "kvq serve drained and exited 0 on SIGTERM"
