# Thin wrapper over CMake. The two commands a new user needs:
#   make demo   install dependencies, build, run the main job (training over RPC)
#   make test   install dependencies, build, run every test
# and for CI / development:
#   make demo-engine     the engine alone, in-process, on the same data
#   make test-sanitize   the same tests in an ASan + UBSan build
#   make bench           the benchmarks, side by side with PyTorch
#   make bench-rpc       the RPC benchmark (traind over loopback vs gRPC echo and PyTorch)
#   make bench-load      the load run: 64 clients over 16 sessions for 2 minutes, with
#                        abandoned and stalled calls, every session replayed and compared
#   make test-deploy     build the container image (podman) and prove it serves
#   make test-tsan       the daemon's integration tests under ThreadSanitizer
#   make fuzz            libFuzzer on requests, checkpoints and JSON specs
BUILD ?= build
BUILD_SAN ?= build-sanitize
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build build-sanitize build-tsan demo demo-engine test test-sanitize test-tsan test-deploy bench bench-rpc bench-load fuzz clean

all: build

deps:
	bash deploy/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

build-sanitize: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DTRAIND_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_SAN) -j $(JOBS)

build-tsan: deps
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRAIND_TSAN=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_TSAN) -j $(JOBS)

# The daemon's integration tests (concurrent sessions, shutdown with calls in
# flight, ...) and the engine's thread pool (unit.test_parallel) under
# ThreadSanitizer. tests/tsan.supp says what is suppressed
# and why (libraries not built with TSan).
test-tsan: build-tsan
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=0" \
	  ctest --test-dir $(BUILD_TSAN) -L integration --output-on-failure -j $(JOBS)
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1" \
	  ctest --test-dir $(BUILD_TSAN) -R '^unit\.test_parallel$$' --output-on-failure

# The main job: start traind on a free loopback port, train an MLP on the
# digits over gRPC with the Python client, check the checkpoint in PyTorch,
# race the same training in local PyTorch, stop the daemon with SIGTERM.
demo: build
	TRAIND_PY_STUBS=$(BUILD)/python /usr/bin/python3 clients/python/examples/demo.py \
	  --daemon $(BUILD)/server/traind

# The engine alone, in-process (no daemon): the same MLP from C.
DEMO_OUT ?= $(BUILD)/demo
demo-engine: build
	mkdir -p $(DEMO_OUT)
	$(BUILD)/lib/examples/train_digits tests/data/digits.csv 30 $(DEMO_OUT)
	/usr/bin/python3 lib/examples/verify_in_torch.py $(DEMO_OUT)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-sanitize: build-sanitize
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(BUILD_SAN) --output-on-failure -j $(JOBS)

# Installs podman/buildah/debootstrap if missing, caches a debootstrapped base
# image, builds deploy/Dockerfile and drives the container from the host.
test-deploy: build
	bash deploy/test/run.sh $(BUILD)

bench: build
	bash tests/bench/run_bench.sh $(BUILD)

bench-rpc: build
	sh tests/bench/run_bench_rpc.sh $(BUILD)

# tests/bench/load_gen.c says what runs and what is checked; `make test` runs the same
# for 20 s (ctest bench.load_short). LOAD_SECONDS shortens or lengthens it.
LOAD_SECONDS ?= 120
bench-load: build
	sh tests/bench/run_load.sh $(BUILD) $(LOAD_SECONDS)

# libFuzzer (clang, ASan + UBSan) on what hostile input reaches: every
# request type through decode and validation, the safetensors reader,
# trainctl's JSON specs. FUZZ_SECONDS each (CI: 60), from tests/fuzz/corpus.
fuzz: deps
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRAIND_FUZZ=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_requests fuzz_safetensors fuzz_spec_json fuzz_session_file
	bash tests/fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_TSAN) $(BUILD_FUZZ)
