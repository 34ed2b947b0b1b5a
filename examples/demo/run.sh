#!/bin/sh
# run.sh ARMADA_BINARY — what `make run` does: a single-node cluster in
# ./armada-data with the UI and the demo fleet. Ctrl-C stops it.
# ARMADA_DATA_DIR, ARMADA_HTTP_ADDR and the other ARMADA_<FLAG> variables
# of `armada join` change its defaults.
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
data=${ARMADA_DATA_DIR:-./armada-data}
http=${ARMADA_HTTP_ADDR:-127.0.0.1:7070}
export ARMADA_ADDR="http://$http"

"$bin" join --name "${ARMADA_NAME:-$(hostname)}" --data-dir "$data" --http-addr "$http" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid; exit 0' INT TERM
until "$bin" status >/dev/null 2>&1; do
	kill -0 $pid 2>/dev/null || { wait $pid; exit 1; }
	sleep 0.2
done
sed "s|@ARMADA@|$bin|" "$here/blueprint.yaml" | "$bin" blueprint apply -f - >/dev/null
"$bin" fleet apply -f "$here/fleet.yaml" >/dev/null
cat <<MSG

  Armada is running: UI at http://$http/ui/
  The demo fleet keeps 3 game servers ready. Try:
    $bin ship list --fleet demo
    $bin allocate demo                # prints the server's address and port
    nc ADDRESS PORT                   # type anything; END ends the match
  Ctrl-C stops the cluster.

MSG
wait $pid
