# Entry points for newcomers and CI. Every target installs what is missing first.
.PHONY: all deps build demo test test-release test-asan fuzz bench format clean

JOBS ?= $(shell nproc)

all: build

deps:
	@scripts/install-deps

build: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

# The main job on the bundled captures.
demo: build
	@echo "== kms-analyze on captures/ =="
	build/release/analyzer/kms-analyze captures/*.pcap captures/*.pcapng

# The whole suite, once normally and once under AddressSanitizer + UBSan.
test: deps test-release test-asan

test-release:
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	ctest --preset release

test-asan:
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan

# libFuzzer targets (clang); FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	scripts/run-fuzz $(FUZZ_SECONDS)

bench: deps
	scripts/bench-core

format:
	clang-format -i --style=file $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf build build-fuzz build-release
