# Two builds of the same C sources: native (gcc) for unit tests, sanitizers and fuzzing;
# WebAssembly (emcc, standalone, our own loader in wasm/) for Node and browsers.
CC      ?= gcc
EMCC    ?= emcc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c99 -Wall -Wextra -Wno-unused-parameter -Isrc
EMFLAGS  = -O3 -std=c99 -Wall -Isrc -sSTANDALONE_WASM --no-entry -sALLOW_MEMORY_GROWTH=1 \
           -sINITIAL_MEMORY=33554432 -sMAXIMUM_MEMORY=2147483648 -sTOTAL_STACK=1048576
export NODE_PATH ?= /usr/share/nodejs

SRC      = $(wildcard src/*.c src/kernels/*.c)
HDR      = $(wildcard src/*.h src/kernels/*.h)
NATIVE   = build/native
TESTS_C  = $(patsubst tests/c/%.c,$(NATIVE)/%,$(wildcard tests/c/test_*.c))

.PHONY: all native wasm models test-native test start setup clean
all: wasm models

# The README's two commands: everything from a fresh Debian machine.
start: setup all
	node tools/serve.mjs
test: setup all
	$(MAKE) test-native
	node --test tests/

setup:
	bash tools/setup.sh

native: $(TESTS_C)
wasm: build/tinytune.wasm build/tinytune-scalar.wasm build/test_kernels.wasm

$(NATIVE)/libtt.a: $(SRC) $(HDR)
	@mkdir -p $(NATIVE)/obj
	cd $(NATIVE)/obj && rm -f *.o && $(CC) $(CFLAGS) -I$(CURDIR)/src -c $(addprefix $(CURDIR)/,$(SRC))
	ar rcs $@ $(NATIVE)/obj/*.o

$(NATIVE)/test_%: tests/c/test_%.c tests/c/check.h $(NATIVE)/libtt.a
	$(CC) $(CFLAGS) -Itests/c -o $@ $< $(NATIVE)/libtt.a -lm

test-native: $(TESTS_C)
	@set -e; for t in $(TESTS_C); do echo "== $$t"; $$t; done

build/tinytune.wasm: $(SRC) $(HDR)
	@mkdir -p build
	$(EMCC) $(EMFLAGS) -msimd128 -o $@ $(SRC)

# Fallback for runtimes without WASM SIMD: same sources, scalar kernels only.
build/tinytune-scalar.wasm: $(SRC) $(HDR)
	@mkdir -p build
	$(EMCC) $(EMFLAGS) -o $@ $(SRC)

# The kernel tests again, in WASM, where the SIMD kernels exist (run by tests/kernels.test.mjs).
build/test_kernels.wasm: tests/c/test_kernels.c tests/c/check.h $(SRC) $(HDR)
	@mkdir -p build
	$(EMCC) -O2 -std=c99 -Isrc -Itests/c -msimd128 -sSTANDALONE_WASM -sALLOW_MEMORY_GROWTH=1 -o $@ $< $(SRC)

models: models/.built
models/.built: models/build.mjs node_modules/nsfwjs/package.json
	node models/build.mjs
	@touch $@

node_modules/nsfwjs/package.json:
	bash tools/setup.sh

clean:
	rm -rf build models/.built
