# start_traind.sh - sourced by the benchmark scripts: start_traind NAME DAEMON LOG [flags...]
# starts DAEMON on a free loopback port (port 0) with its stderr in LOG, waits for its
# "listening on HOST:PORT" line (the real port) and sets $pid and $addr. NAME prefixes
# the errors; a daemon that exits or is not ready within 10 s ends the script.
start_traind() {
  _name=$1 _daemon=$2 _log=$3
  shift 3
  "$_daemon" --listen 127.0.0.1:0 "$@" 2>"$_log" &
  pid=$!
  addr=
  _i=0
  while [ -z "$addr" ]; do
    addr=$(sed -n 's/.*listening on \([^ ]*:[0-9][0-9]*\).*/\1/p' "$_log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$_log" >&2; echo "$_name: traind exited" >&2; exit 1; }
    _i=$((_i + 1))
    [ "$_i" -lt 100 ] || { cat "$_log" >&2; echo "$_name: traind not ready after 10 s" >&2; exit 1; }
    sleep 0.1
  done
  echo "traind started: $addr (pid $pid)"
}
