#!/usr/bin/env bash
# Builds the Debian package streetwatch_<version>_<arch>.deb with cargo-deb.
#
#   deploy/deb.sh [--arch amd64|arm64] [--binary FILE] [--out DIR] [--fast]
#
#   --arch    Debian architecture (default: this machine's). arm64 on an x86_64
#             machine cross-builds with Debian's gcc-aarch64-linux-gnu and the
#             arm64 FFmpeg libraries (multiarch): `deploy/setup.sh arm64` first.
#   --binary  package this streetwatch binary instead of building the release
#             one (the package tests package the binary they were built with).
#   --out     where the .deb goes (default: target/debian/); its path is printed.
#   --fast    lighter compression (a bigger file, built much faster).
#
# The ONNX Runtime library (the pinned wheel's, for that architecture) and the
# default model come from the set-up cache, are checked against their sha256
# pins (deploy/versions.env, models/nanodet-m-416.sha256) and staged in
# target/deb-assets/, where Cargo.toml's [package.metadata.deb] takes them.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source=deploy/versions.env
. "$SCRIPT_DIR/versions.env"
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${STREETWATCH_CACHE:-$HOME/.cache/streetwatch}

die() { printf 'deb: error: %s\n' "$*" >&2; exit 1; }
sha256() { sha256sum -- "$1" | cut -d' ' -f1; }
verify() {
    [[ -f $1 ]] || die "$1 is missing: $2"
    local got; got=$(sha256 "$1")
    [[ $got == "$3" ]] || die "sha256 mismatch for $1: expected $3, got $got"
}

host_arch=$(dpkg --print-architecture)
arch=$host_arch binary="" out=$REPO_DIR/target/debian fast=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --arch) arch=$2; shift 2 ;;
        --binary) binary=$(realpath -- "$2"); shift 2 ;;
        --out) mkdir -p -- "$2"; out=$(realpath -- "$2"); shift 2 ;;
        --fast) fast=1; shift ;;
        -h | --help) sed -n '2,/^set -/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

case $arch in
    amd64 | x86_64) arch=amd64 ort_arch=x86_64 triple=x86_64-unknown-linux-gnu gnu=x86_64-linux-gnu ;;
    arm64 | aarch64) arch=arm64 ort_arch=aarch64 triple=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu ;;
    *) die "no package for architecture '$arch' (amd64 or arm64)" ;;
esac
command -v cargo-deb >/dev/null || die "cargo-deb is missing: run deploy/setup.sh package-tools"

# The pinned ONNX Runtime library for $arch, and the default model.
if [[ $arch == "$host_arch" ]]; then
    ort_lib=$CACHE/onnxruntime-$ORT_VERSION/libonnxruntime.so.$ORT_VERSION
    ort_hint="run deploy/setup.sh ort"
else
    ort_lib=$CACHE/onnxruntime-$ORT_VERSION-$ort_arch/libonnxruntime.so.$ORT_VERSION
    ort_hint="run deploy/setup.sh $arch"
fi
v="ORT_LIB_SHA256_$ort_arch"
verify "$ort_lib" "$ort_hint" "${!v}"
model=$CACHE/models/nanodet-m-416.onnx
model_sha=$(awk '$2 == "nanodet-m-416.onnx" { print $1 }' "$REPO_DIR/models/nanodet-m-416.sha256")
verify "$model" "run deploy/setup.sh model" "$model_sha"

stage=$REPO_DIR/target/deb-assets
mkdir -p "$stage"
# One package build at a time: they share the staging folder.
exec 9>"$REPO_DIR/target/deb-assets.lock"
flock 9
install -m 0644 "$ort_lib" "$stage/libonnxruntime.so.$ORT_VERSION"
install -m 0644 "$model" "$stage/nanodet-m-416.onnx"

args=(--output "$out" --strip)
[[ $fast -eq 0 ]] || args+=(--fast)
env_cross=()
if [[ $arch != "$host_arch" ]]; then
    args+=(--target "$triple")
    upper=${triple//-/_}
    env_cross=(
        "CARGO_TARGET_${upper^^}_LINKER=$gnu-gcc"
        "CC_${upper}=$gnu-gcc"
        "AR_${upper}=$gnu-ar"
        "STRIP_${triple}=$gnu-strip"
        "OBJCOPY_${triple}=$gnu-objcopy"
        # FFmpeg's .pc files of the target architecture (multiarch).
        "PKG_CONFIG_ALLOW_CROSS=1"
        "PKG_CONFIG_LIBDIR=/usr/lib/$gnu/pkgconfig:/usr/share/pkgconfig"
        # bindgen (ffmpeg-sys-next) parses the target's headers.
        "BINDGEN_EXTRA_CLANG_ARGS_${upper}=--target=$gnu -I/usr/include/$gnu"
    )
fi

if [[ -n $binary ]]; then
    # A scratch target dir holding only this binary, where cargo-deb looks for it.
    scratch=$(mktemp -d)
    trap 'rm -rf -- "$scratch"' EXIT
    dir=$scratch/release
    [[ $arch == "$host_arch" ]] || dir=$scratch/$triple/release
    mkdir -p "$dir"
    cp -- "$binary" "$dir/streetwatch"
    args+=(--no-build)
    env_cross+=("CARGO_TARGET_DIR=$scratch")
else
    args+=(--locked)
fi

cd "$REPO_DIR"
deb=$(env "${env_cross[@]}" cargo deb --quiet "${args[@]}" | tail -n 1)
[[ -f $deb ]] || die "cargo deb did not produce a package"
printf '%s\n' "$deb"
