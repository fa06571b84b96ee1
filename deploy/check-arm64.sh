#!/usr/bin/env bash
# Runs the arm64 package's binary under qemu-user on this x86_64 machine:
#
#   1. `streetwatch --version`: the aarch64 ONNX Runtime and FFmpeg it loads.
#   2. `streetwatch detect` on bus.jpg, arm64 against x86_64: the same
#      detections (same classes, each box with IoU >= 0.99, scores within 0.01).
#   3. `streetwatch run` on a 20 s clip, publishing to a local mosquitto: the
#      events arrive on the broker.
#
# Run as root (or with sudo -n): see /proc/cpuinfo below.
#
#   deploy/check-arm64.sh [ARM64_DEB]   (default: target/debian/streetwatch_*_arm64.deb)
#
# Needs `make deb ARCH=arm64` (and so `deploy/setup.sh arm64`: qemu-user, the
# arm64 FFmpeg libraries through multiarch) and an x86_64 build (`make build`,
# or the test build). Slow: qemu emulates every instruction. Not part of `make test`.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${STREETWATCH_CACHE:-$HOME/.cache/streetwatch}
say() { printf 'check-arm64: %s\n' "$*"; }
die() { printf 'check-arm64: error: %s\n' "$*" >&2; exit 1; }

deb=${1:-}
if [[ -z $deb ]]; then
    deb=$(ls -t "$REPO_DIR"/target/debian/streetwatch_*_arm64.deb 2>/dev/null | head -n 1 || true)
fi
[[ -f $deb ]] || die "no arm64 package: run make deb ARCH=arm64"
# The x86_64 reference: the release build, else the test build.
x86=$REPO_DIR/target/release/streetwatch
[[ -x $x86 ]] || x86=$REPO_DIR/target/debug/streetwatch
[[ -x $x86 ]] || die "no x86_64 build: run make build"
file -b "$x86" | grep -q 'x86-64' || die "$x86 is not an x86_64 binary"
command -v qemu-aarch64 >/dev/null || die "qemu-user is missing: run deploy/setup.sh arm64"
[[ -e /lib/ld-linux-aarch64.so.1 ]] || die "the arm64 C library is missing: run deploy/setup.sh arm64"

work=$(mktemp -d)
broker_pid=""
cleanup() {
    [[ -z $broker_pid ]] || kill "$broker_pid" 2>/dev/null || true
    rm -rf -- "$work"
}
trap cleanup EXIT

say "package $(basename "$deb")"
dpkg-deb -x "$deb" "$work/root"
arm=$work/root/usr/bin/streetwatch
file -b "$arm" | grep -q 'ARM aarch64' || die "$arm is not an aarch64 binary"
# The package's library and model (the same .onnx for both architectures).
export ORT_DYLIB_PATH=$work/root/usr/lib/streetwatch/libonnxruntime.so.1.31.1
export STREETWATCH_MODEL=$work/root/usr/lib/streetwatch/models/nanodet-m-416.onnx
export RUST_LOG=warn
# The x86_64 reference loads the x86_64 library of the same pinned version.
x86_ort=$CACHE/onnxruntime-1.31.1/libonnxruntime.so.1.31.1
# ONNX Runtime learns the CPU from /proc/cpuinfo (pytorch/cpuinfo); under
# qemu-user it would read this x86_64 machine's, find no ARM core in it and
# crash. Each arm64 command runs in a mount namespace of its own where
# /proc/cpuinfo describes Cortex-A76 cores (an RK3588's big cores), as many
# as this machine has. That needs root (or sudo -n); nothing outside changes.
# qemu emulates a Cortex-A76 too: its default CPU has SVE, which ONNX Runtime
# would use and qemu emulates some 20 times slower than NEON.
fake_cpuinfo=$work/cpuinfo
for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 0\n\n' "$i"
done >"$fake_cpuinfo"
root=()
[[ $(id -u) -eq 0 ]] || root=(sudo -n env "ORT_DYLIB_PATH=$ORT_DYLIB_PATH" \
    "STREETWATCH_MODEL=$STREETWATCH_MODEL" "RUST_LOG=$RUST_LOG")
arm64() {
    "${root[@]}" unshare --mount --propagation private sh -c \
        'mount --bind "$1" /proc/cpuinfo && shift && exec qemu-aarch64 -cpu cortex-a76 "$@"' \
        sh "$fake_cpuinfo" "$arm" "$@"
}

say "1. streetwatch --version (arm64, under qemu-aarch64)"
arm64 --version | sed 's/^/    /'

say "2. detect bus.jpg: x86_64 and arm64"
bus=$CACHE/media/bus.jpg
ORT_DYLIB_PATH=$x86_ort "$x86" detect --json "$bus" >"$work/x86.json"
start=$(date +%s)
arm64 detect --json "$bus" >"$work/arm64.json"
say "   arm64 detect took $(($(date +%s) - start)) s under qemu"
/usr/bin/python3 - "$work/x86.json" "$work/arm64.json" <<'PY'
import json, sys
x86, arm = (json.load(open(p))["detections"] for p in sys.argv[1:3])
def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
ok = len(x86) == len(arm) and len(x86) > 0
left = list(arm)
for d in x86:
    best = max(left, key=lambda e: iou(d["box"], e["box"]) if e["class"] == d["class"] else -1, default=None)
    if best is None or best["class"] != d["class"]:
        ok = False
        print(f"    {d['class']:<8} {d['score']:.3f} {d['box']}  has no arm64 match")
        continue
    left.remove(best)
    v = iou(d["box"], best["box"])
    good = v >= 0.99 and abs(d["score"] - best["score"]) <= 0.01
    ok &= good
    box = lambda b: "[" + ", ".join(f"{v:.1f}" for v in b) + "]"
    print(f"    {d['class']:<7} x86_64 {d['score']:.3f} {box(d['box'])}  arm64 {best['score']:.3f} {box(best['box'])}  IoU {v:.4f}{'' if good else '  <- differs'}")
for e in left:
    ok = False
    print(f"    {e['class']:<8} {e['score']:.3f} {e['box']}  only on arm64")
print(f"    {len(x86)} detections on x86_64, {len(arm)} on arm64: {'same' if ok else 'DIFFERENT'}")
sys.exit(0 if ok else 1)
PY

say "3. run on a 20 s clip, publishing to a local mosquitto (arm64)"
ffmpeg -nostdin -loglevel error -i "$CACHE/media/vtest.mp4" -t 20 -c copy "$work/clip.mp4"
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
cat >"$work/streetwatch.toml" <<EOF
[node]
id = "arm64-check"
[mqtt]
url = "mqtt://127.0.0.1:$port"
topic_prefix = "swarm"
[outbox]
path = "$work/outbox.sqlite"
[[camera]]
id = "campus"
url = "$work/clip.mp4"
fps = 1
[[camera.zone]]
id = "road"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]
[camera.zone.congestion]
levels = { light = 1, moderate = 4, heavy = 8 }
min_duration_s = 0
EOF
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'swarm/arm64-check/events/#' -v >"$work/events.txt" 2>/dev/null &
sub_pid=$!
sleep 0.5
start=$(date +%s)
RUST_LOG=info
[[ ${#root[@]} -eq 0 ]] || root[-1]="RUST_LOG=info"
arm64 run --config "$work/streetwatch.toml" 2>"$work/run.log" ||
    { tail -n 20 "$work/run.log" >&2; die "the arm64 daemon failed"; }
sleep 1
kill "$sub_pid" 2>/dev/null || true
say "   arm64 run took $(($(date +%s) - start)) s under qemu"
grep -E '^streetwatch: (summary|camera)' "$work/run.log" | sed 's/^/    /'
received=$(grep -c '^swarm/arm64-check/events/' "$work/events.txt" || true)
say "   mosquitto delivered $received event(s) to a subscriber, e.g.:"
head -n 2 "$work/events.txt" | cut -c1-200 | sed 's/^/    /'
[[ $received -gt 0 ]] || die "no event reached the broker"
say "ok: the arm64 build detects as x86_64 does and publishes events"
