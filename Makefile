# Entry points for newcomers and CI. Every target installs what is missing first.
.PHONY: all deps build demo test test-release test-asan package test-packages fuzz bench format clean

JOBS ?= $(shell nproc)

all: build

deps:
	@scripts/install-deps

build: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

# The main job on the bundled captures.
DEMO_CAPTURE = captures/vlmcs-vlmcsd-v6-win10pro-ndr64-3req.pcapng
demo: build
	@echo "== kms-analyze on captures/ =="
	build/release/analyzer/kms-analyze captures/*.pcap captures/*.pcapng
	@echo
	@echo "== tshark with the KMS plugin: $(DEMO_CAPTURE) =="
	@KMS_PLUGIN=build/release/dissector/kms.so tests/dissector/tshark-kms -r - -Y kms < $(DEMO_CAPTURE) 2>/dev/null
	@KMS_PLUGIN=build/release/dissector/kms.so tests/dissector/tshark-kms -r - -O kms -V -Y 'frame.number == 11' < $(DEMO_CAPTURE) 2>/dev/null

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

# Debian packages (kmscope, kmscope-wireshark-plugin) from the release tree, into build/packages/.
# Packages need the prefix /usr at configure time (unit ExecStart, /etc); cpack refuses others.
package: deps
	cmake --preset release -DCMAKE_INSTALL_PREFIX=/usr
	cmake --build --preset release -j $(JOBS)
	rm -f build/packages/*.deb
	cpack --config build/release/CPackConfig.cmake -B build/packages
	@ls -l build/packages/*.deb

# Those packages installed with apt-get into a fresh Debian 12 chroot, and checked there (root).
test-packages: package
	tests/packaging/test-deb-install build/packages

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
