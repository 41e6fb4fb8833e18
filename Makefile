# Two builds of the same C sources: native (gcc) for unit tests, sanitizers and fuzzing;
# WebAssembly (emcc, standalone, our own loader in wasm/) for Node and browsers.
CC      ?= gcc
EMCC    ?= emcc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c99 -Wall -Wextra -Wno-unused-parameter -Isrc
EMFLAGS  = -O3 -std=c99 -Wall -Isrc -sSTANDALONE_WASM --no-entry -sALLOW_MEMORY_GROWTH=1 \
           -sINITIAL_MEMORY=33554432 -sMAXIMUM_MEMORY=2147483648 -sTOTAL_STACK=1048576 $(EXPORT_FLAGS)
export NODE_PATH ?= /usr/share/nodejs

# The module's exports, each under its C name. src/api.c holds the few that exist only
# for the module; src/abi.h declares the structs they take and return and the enum
# names JS uses (tt_abi). tt_bench_kernel exports itself (src/kernels/microbench.c).
EXPORTS = tt_abi tt_last_error tt_last_code tt_alloc tt_free tt_hash \
  tt_threads tt_threads_lend tt_threads_stop tt_threads_crashed tt_threads_lost tt_test_crash_thread \
  tt_net_create tt_net_free tt_net_add tt_net_fold_bn tt_net_quantized tt_net_forward tt_net_count \
  tt_net_op tt_net_activation_bytes tt_net_slice tt_net_add_dense tt_weights_decode \
  tt_img_decode tt_img_from_pixels tt_img_delete tt_img_sample tt_img_sample_aug tt_rng_new \
  tt_train_defaults tt_trainer_new tt_trainer_new_half tt_trainer_run tt_trainer_stop \
  tt_trainer_confusion tt_trainer_validation tt_trainer_free tt_predict tt_f16_pack \
  tt_model_save tt_model_load
comma := ,
empty :=
space := $(empty) $(empty)
EXPORT_FLAGS = -sEXPORTED_FUNCTIONS=$(subst $(space),$(comma),$(addprefix _,$(strip $(EXPORTS))))

SRC      = $(wildcard src/*.c src/kernels/*.c)
HDR      = $(wildcard src/*.h src/kernels/*.h src/third_party/*.h)
NATIVE   = build/native
TESTS_C  = $(patsubst tests/c/%.c,$(NATIVE)/%,$(wildcard tests/c/test_*.c))

.PHONY: all native wasm models test-native test start setup clean format format-check
all: wasm models

# The README's two commands: everything from a fresh Debian machine.
start: setup all
	node tools/serve.mjs
test: setup all
	$(MAKE) format-check
	$(MAKE) test-native
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) fuzz
	node --test tests/

# One style, checked by `make test`: clang-format for C (.clang-format), prettier for
# JavaScript (.prettierrc.json, .prettierignore). stb_image is vendored as it comes.
C_SOURCES = $(shell git ls-files 'src/*.[ch]' 'tests/*.[ch]' | grep -v third_party)
format:
	clang-format -i $(C_SOURCES)
	node_modules/.bin/prettier --write --log-level warn .
format-check:
	clang-format --dry-run --Werror $(C_SOURCES)
	node_modules/.bin/prettier --check --log-level warn .

setup:
	bash tools/setup.sh

native: $(TESTS_C)
WASM_TESTS = build/test_kernels.wasm build/test_net.wasm build/test_kernels-relaxed.wasm \
             build/test_net-relaxed.wasm
wasm: build/tinytune.wasm build/tinytune-relaxed.wasm build/tinytune-scalar.wasm \
      build/tinytune-mt.wasm build/tinytune-mt-relaxed.wasm $(WASM_TESTS)

$(NATIVE)/libtt.a: $(SRC) $(HDR)
	@mkdir -p $(NATIVE)/obj
	cd $(NATIVE)/obj && rm -f *.o && $(CC) $(CFLAGS) -I$(CURDIR)/src -c $(addprefix $(CURDIR)/,$(SRC))
	rm -f $@ && ar rcs $@ $(NATIVE)/obj/*.o

$(NATIVE)/test_%: tests/c/test_%.c tests/c/check.h $(NATIVE)/libtt.a
	$(CC) $(CFLAGS) -Itests/c -o $@ $< $(NATIVE)/libtt.a -lm -pthread

test-native: $(TESTS_C)
	@set -e; for t in $(TESTS_C); do echo "== $$t"; $$t; done

build/tinytune.wasm: $(SRC) $(HDR)
	@mkdir -p build
	$(EMCC) $(EMFLAGS) -msimd128 -o $@ $(SRC)

# For runtimes with relaxed SIMD (Chromium 114+; Node 20 with --experimental-wasm-relaxed-simd):
# the kernels' multiply-adds become f32x4.relaxed_madd (FMA). emcc 3.1.6 emits only the
# pre-standard opcode, which tools/relaxed_fma.mjs rewrites after linking (see
# src/kernels/simd.h). wasm/module.mjs picks this build when the runtime validates a
# relaxed_madd probe, else the plain SIMD one, else the scalar one.
build/tinytune-relaxed.wasm: $(SRC) $(HDR) tools/relaxed_fma.mjs
	@mkdir -p build
	$(EMCC) $(EMFLAGS) -msimd128 -mrelaxed-simd -o build/tinytune-relaxed.pre.wasm $(SRC)
	node tools/relaxed_fma.mjs build/tinytune-relaxed.pre.wasm $@

# Threaded builds (WASM threads: atomics and shared memory), loaded by wasm/threads.mjs
# where the runtime allows shared memory (Node; cross-origin isolated pages). Not
# standalone (emcc 3.1.6 has no standalone pthreads), so emcc writes JS glue we do not
# use; only the .wasm is kept. threads.mjs repeats the memory and stack sizes. Compiled
# at -O3 like the other builds but linked at -O2: at -O3 emcc minifies the import and
# export names for its glue. (One command at -O2 ran ~5% slower.)
MTCFLAGS = -O3 -std=c99 -Wall -Isrc -pthread -msimd128
MTLINK   = -O2 -pthread -msimd128 -Wno-pthreads-mem-growth --no-entry -sALLOW_MEMORY_GROWTH=1 \
           -sINITIAL_MEMORY=33554432 -sMAXIMUM_MEMORY=2147483648 -sTOTAL_STACK=1048576 \
           -sENVIRONMENT=web,worker,node $(EXPORT_FLAGS)
MT_OBJ   = $(patsubst %.c,build/mt/simd/%.o,$(SRC))
MT_ROBJ  = $(patsubst %.c,build/mt/relaxed/%.o,$(SRC))
build/mt/simd/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(EMCC) $(MTCFLAGS) -c -o $@ $<
build/mt/relaxed/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(EMCC) $(MTCFLAGS) -mrelaxed-simd -c -o $@ $<
build/tinytune-mt.wasm: $(MT_OBJ)
	$(EMCC) $(MTLINK) -o build/mt/tinytune-mt.js $(MT_OBJ)
	cp build/mt/tinytune-mt.wasm $@
build/tinytune-mt-relaxed.wasm: $(MT_ROBJ) tools/relaxed_fma.mjs
	$(EMCC) $(MTLINK) -mrelaxed-simd -o build/mt/tinytune-mt-relaxed.js $(MT_ROBJ)
	node tools/relaxed_fma.mjs build/mt/tinytune-mt-relaxed.wasm $@

# Fallback for runtimes without WASM SIMD: same sources, scalar kernels only.
build/tinytune-scalar.wasm: $(SRC) $(HDR)
	@mkdir -p build
	$(EMCC) $(EMFLAGS) -o $@ $(SRC)

# Native C tests again, in WASM (run by tests/c_wasm.test.mjs under Node's WASI): the SIMD
# kernels exist only there, and the gradient checks must hold in the build users run.
build/test_%-relaxed.wasm: tests/c/test_%.c tests/c/check.h $(SRC) $(HDR) tools/relaxed_fma.mjs
	@mkdir -p build
	$(EMCC) -O2 -std=c99 -Isrc -Itests/c -msimd128 -mrelaxed-simd -sSTANDALONE_WASM -sALLOW_MEMORY_GROWTH=1 -o build/test_$*-relaxed.pre.wasm $< $(filter-out src/api.c,$(SRC))
	node tools/relaxed_fma.mjs build/test_$*-relaxed.pre.wasm $@
build/test_%.wasm: tests/c/test_%.c tests/c/check.h $(SRC) $(HDR)
	@mkdir -p build
	$(EMCC) -O2 -std=c99 -Isrc -Itests/c -msimd128 -sSTANDALONE_WASM -sALLOW_MEMORY_GROWTH=1 -o $@ $< $(filter-out src/api.c,$(SRC))

models: models/.built
models/.built: models/build.mjs models/zoo.json $(wildcard wasm/tfjs*.mjs) node_modules/nsfwjs/package.json
	node models/build.mjs
	@touch $@

node_modules/nsfwjs/package.json:
	bash tools/setup.sh

clean:
	rm -rf build models/.built

# ---- Hostile inputs: fuzzing and sanitizers ------------------------------------------
# libFuzzer targets (clang 14: apt-get install clang libclang-rt-14-dev) over the three
# parsers of untrusted bytes: images, network descriptions + weights, saved models.
# `make fuzz` is bounded (seconds per target, deterministic seed) and fails on any
# crash, leak, sanitizer report or broken invariant; `make fuzz-long` runs at least
# FUZZ_LONG_RUNS executions per target. Corpora: tests/fuzz/corpus/<target>/ (seeds and
# regression inputs, read only); new inputs go to build/fuzz/. `make test-asan` builds
# and runs every tests/c/test_*.c under AddressSanitizer + UndefinedBehaviorSanitizer.
FUZZ_CC        ?= clang
FUZZ_CFLAGS     = -g -O1 -std=c99 -Isrc -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_TARGETS    = image weights savefile
FUZZ_RUNS      ?= 20000
FUZZ_SECONDS   ?= 15
FUZZ_LONG_RUNS ?= 1000000
FUZZ_OPTS       = -seed=1 -timeout=25 -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1
FUZZ_OBJ        = $(patsubst %.c,build/fuzz/obj/%.o,$(SRC))
ASAN_CC        ?= clang
ASAN_CFLAGS     = -g -O1 -std=c99 -Wall -Wextra -Wno-unused-parameter -Isrc -Itests/c \
                  -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
ASAN_OBJ        = $(patsubst %.c,build/asan/obj/%.o,$(SRC))
ASAN_TESTS      = $(patsubst tests/c/%.c,build/asan/%,$(wildcard tests/c/test_*.c))

.PHONY: fuzz fuzz-long fuzz-build fuzz-seeds test-asan test-tsan
.SECONDARY: $(FUZZ_OBJ) $(ASAN_OBJ)
fuzz-build: $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS))

VENDORED        = $(wildcard src/third_party/*.h)
build/fuzz/obj/%.o: %.c $(HDR) $(VENDORED)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_OBJ) -lm

# Each target: the committed corpus first (every seed and regression input is re-run),
# then FUZZ_RUNS new executions (at most FUZZ_SECONDS) from a fresh scratch corpus.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz_$$t ($(FUZZ_RUNS) runs, at most $(FUZZ_SECONDS) s)"; \
	  rm -rf build/fuzz/scratch/$$t; mkdir -p build/fuzz/scratch/$$t build/fuzz/crashes; \
	  build/fuzz/fuzz_$$t $(FUZZ_OPTS) -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=build/fuzz/crashes/$$t- build/fuzz/scratch/$$t tests/fuzz/corpus/$$t \
	    > build/fuzz/$$t.log 2>&1 || { tail -n 60 build/fuzz/$$t.log; echo "fuzz_$$t FAILED (input in build/fuzz/crashes/)"; exit 1; }; \
	  grep -E '^Done|stat::number_of_executed_units' build/fuzz/$$t.log | tail -n 2; \
	done

# At least FUZZ_LONG_RUNS executions per target; the scratch corpus persists between
# runs (build/fuzz/long/<target>) so repeated runs go deeper.
fuzz-long: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz_$$t ($(FUZZ_LONG_RUNS) runs)"; \
	  mkdir -p build/fuzz/long/$$t build/fuzz/crashes; \
	  build/fuzz/fuzz_$$t $(FUZZ_OPTS) -runs=$(FUZZ_LONG_RUNS) \
	    -artifact_prefix=build/fuzz/crashes/$$t- build/fuzz/long/$$t tests/fuzz/corpus/$$t \
	    > build/fuzz/$$t-long.log 2>&1 || { tail -n 60 build/fuzz/$$t-long.log; echo "fuzz_$$t FAILED (input in build/fuzz/crashes/)"; exit 1; }; \
	  grep -E '^Done|stat::number_of_executed_units' build/fuzz/$$t-long.log | tail -n 2; \
	done

# Regenerates the saved-model and network seeds (image seeds: tests/fuzz/make_image_seeds.py).
fuzz-seeds: build/fuzz/make_seeds
	build/fuzz/make_seeds tests/fuzz/corpus
build/fuzz/make_seeds: tests/fuzz/make_seeds.c $(SRC) $(HDR)
	@mkdir -p build/fuzz
	$(CC) -O1 -g -std=c99 -Isrc -o $@ $< $(SRC) -lm

build/asan/obj/%.o: %.c $(HDR) $(VENDORED)
	@mkdir -p $(dir $@)
	$(ASAN_CC) $(ASAN_CFLAGS) -c -o $@ $<

build/asan/test_%: tests/c/test_%.c tests/c/check.h $(ASAN_OBJ)
	$(ASAN_CC) $(ASAN_CFLAGS) -o $@ $< $(ASAN_OBJ) -lm -pthread

# The thread pool and the kernels split across threads, under ThreadSanitizer.
build/tsan/test_threads: tests/c/test_threads.c tests/c/check.h $(SRC) $(HDR)
	@mkdir -p build/tsan
	$(ASAN_CC) -g -O1 -std=c99 -Isrc -Itests/c -fsanitize=thread -o $@ $< $(SRC) -lm -pthread
test-tsan: build/tsan/test_threads
	TSAN_OPTIONS=halt_on_error=1 build/tsan/test_threads

test-asan: $(ASAN_TESTS)
	@set -e; for t in $(ASAN_TESTS); do echo "== $$t (ASan+UBSan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $$t; done
