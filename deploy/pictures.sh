#!/usr/bin/env bash
# The README's pictures, made from the demo (deploy/demo.toml on the sample video):
#   docs/img/preview.jpg   `streetwatch preview` of the demo camera, 20 s into the video
#   docs/img/evidence.jpg  the evidence JPEG of the demo's first litter incident
#                          (else its first incident), from `streetwatch replay`
# Run by `make pictures` after the release build; BIN overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/streetwatch}
CACHE=${STREETWATCH_CACHE:-$HOME/.cache/streetwatch}
export STREETWATCH_CACHE=$CACHE
out=docs/img
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DEMO_DIR=$tmp

ffmpeg -v error -y -ss 20 -i "$CACHE/media/vtest.avi" -frames:v 1 "$tmp/frame.png"
"$BIN" preview --config deploy/demo.toml --camera campus-road --frame "$tmp/frame.png" \
    -o "$out/preview.jpg"

"$BIN" replay --config deploy/demo.toml --events-out "$tmp/events.jsonl" \
    --evidence-dir "$tmp/evidence"
line=$(grep -m1 '"type":"litter","phase":"start"' "$tmp/events.jsonl" ||
    grep -m1 '"phase":"start"' "$tmp/events.jsonl" || true)
if [[ -z $line ]]; then
    echo "pictures: the demo replay produced no incident" >&2
    exit 1
fi
id=$(sed -E 's/^\{"schema":"[^"]*","id":"([^"]+)".*/\1/' <<<"$line")
cp "$tmp/evidence/$id.jpg" "$out/evidence.jpg"
echo "pictures: $out/preview.jpg, $out/evidence.jpg (event $id)"
