#!/usr/bin/env bash
# `make demo`: a local mosquitto on a free loopback port, a subscriber that
# prints each event as it arrives, the reference consumer (examples/brain.rs)
# that prints the dispatch lines a city brain acts on, and the daemon on the
# sample video.
# Everything it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
export STREETWATCH_CACHE=${STREETWATCH_CACHE:-$HOME/.cache/streetwatch}
bin=${STREETWATCH_BIN:-target/release/streetwatch}
brain=${STREETWATCH_BRAIN:-target/release/examples/brain}
[[ -x $bin ]] || { echo "demo: $bin is not built (run make demo)" >&2; exit 1; }
[[ -x $brain ]] || { echo "demo: $brain is not built (run make demo)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/streetwatch-demo.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf -- "$work"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done

echo "demo: mosquitto on 127.0.0.1:$port; events on streetwatch/demo-pole/events/#"
"$bin" tail --url "mqtt://127.0.0.1:$port" --node demo-pole 2>"$work/tail.log" &
pids+=($!)
for _ in $(seq 100); do
    grep -q listening "$work/tail.log" 2>/dev/null && break
    sleep 0.05
done

"$brain" --url "mqtt://127.0.0.1:$port" --evidence-dir "$work/evidence" \
    > >(sed -u 's/^/brain: /') 2>"$work/brain.log" &
pids+=($!)
for _ in $(seq 100); do
    grep -q listening "$work/brain.log" 2>/dev/null && break
    sleep 0.05
done

echo "demo: running the daemon on vtest.avi (79.5 s of video, analysed at 5 fps)"
status=0
DEMO_MQTT_PORT=$port DEMO_DIR=$work RUST_LOG=${RUST_LOG:-warn} \
    "$bin" run --config deploy/demo.toml 2>"$work/daemon.log" || status=$?
# Let the subscriber print the last events before the daemon's summary.
sleep 0.5
cat "$work/daemon.log" >&2
exit "$status"
