# streetwatch — two commands do everything on a fresh Debian/Ubuntu machine:
#   make demo   set up, build, run the daemon on the sample video, print events
#   make test   set up, then run every test
#   make pictures  regenerate the README's pictures (docs/img/) from the demo
SHELL := /bin/bash
export STREETWATCH_CACHE ?= $(HOME)/.cache/streetwatch
CARGO ?= cargo

# Debian architecture of `make deb`: this machine's, or arm64 (cross-built).
ARCH ?= $(shell dpkg --print-architecture)

.PHONY: setup build demo test lint bench bench-cameras clean-cache deb check-arm64 pictures

## Install Debian packages, ONNX Runtime, the default model and sample media (idempotent).
setup:
	@deploy/setup.sh all

## Release build of the daemon.
build: setup
	@$(CARGO) build --release --quiet --bin streetwatch

## Run the daemon on the sample video against a local mosquitto, printing events and
## the dispatch lines of the reference consumer (examples/brain.rs).
demo: build
	@$(CARGO) build --release --quiet --example brain
	@deploy/demo.sh

## The README's pictures (docs/img/): a preview and an evidence image from the demo.
pictures: build
	@deploy/pictures.sh

## Everything the tests need, then all tests.
test: setup
	@deploy/setup.sh test-assets
	@$(CARGO) build --quiet --all-targets
	@$(CARGO) test --quiet --all-targets

## The Debian package: target/debian/streetwatch_<version>_<arch>.deb (ARCH=arm64 cross-builds).
deb: setup
	@deploy/setup.sh package-tools $(if $(filter-out $(shell dpkg --print-architecture),$(ARCH)),$(ARCH))
	@deploy/deb.sh --arch $(ARCH)

## The arm64 build under qemu-user: detections as on x86, events to a local mosquitto (slow).
check-arm64: setup
	@deploy/setup.sh package-tools arm64
	@deploy/check-arm64.sh

## 16 real-time cameras (CAMERAS=N) on a still street against one, as ratios (SECONDS=65 each).
bench-cameras: setup
	@deploy/setup.sh test-assets
	@$(CARGO) bench --bench many_cameras

## Formatting and lints, as the project keeps them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## The daemon against a bare ONNX Runtime loop (benches/e2e.rs; writes benches/RESULTS.md,
## E2E_ARGS="--rounds 5 --seconds 30"), 16 cameras on a still street against one
## (benches/many_cameras.rs, CAMERAS=N SECONDS=S) and the criterion benches.
bench: setup
	@deploy/setup.sh check
	@$(CARGO) build --release --quiet --bin streetwatch
	@$(CARGO) test --quiet --bench e2e -- --bench $(E2E_ARGS)
	@deploy/setup.sh test-assets
	@$(CARGO) bench --quiet --bench many_cameras
	@$(CARGO) bench --quiet --bench preprocess --bench decode -- --quick

## Remove everything set-up downloaded or built (it is rebuilt on the next make).
clean-cache:
	rm -rf "$(STREETWATCH_CACHE)"
