# toolrl: one binary (`toolrl`) and a cmocka test suite.
#   make run    install what is missing for building and serving, fetch the default model, build,
#               start the server
#   make test   the same set-up plus the tests' packages (Chromium for the dashboard's test), then
#               every test, the OpenAI-SDK tests against a live server, the dashboard in Chromium,
#               then every C test again under ASan+UBSan
#   make        just build
#   make CUDA=1 build with the CUDA backend (model/ops_cuda.cu: nvcc, cuBLAS); `--device cuda:0`
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3
SANFLAGS ?=
NATIVE  := $(shell $(CC) -march=native -E -x c /dev/null >/dev/null 2>&1 && echo -march=native)
BLAS_INC := $(firstword $(wildcard /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas))
CFLAGS  := $(OPT) -g $(NATIVE) -fno-omit-frame-pointer $(SANFLAGS) \
           -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -I. \
           $(if $(BLAS_INC),-I$(BLAS_INC)) -MMD -MP
LDLIBS  := $(SANFLAGS) -lopenblas -lpcre2-8 -lcjson -lmicrohttpd -lsqlite3 -lcrypto -lmvec -lm -fopenmp
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The CUDA emulation the tests run the CUDA kernels on (tests/support/cuemu.h): C++, g++.
CUEMU_FLAGS = $(OPT) -g $(NATIVE) -fno-omit-frame-pointer $(SANFLAGS) -std=c++20 -D_GNU_SOURCE -Wall -Wextra \
              -Werror -fno-exceptions -fno-rtti -I. -MMD -MP

# CUDA=1: model/ops_cuda.cu (nvcc) is linked in place of model/ops_cuda_none.c; every other
# object is the same, so both builds share BUILD and only the link differs ($(BUILD)/link.cfg
# relinks when CUDA changes). CUDA_HOME: the toolkit (nvcc on PATH, /usr/local/cuda, or the
# PyPI wheels scripts/setup-cuda.sh installs under var/cuda); CUDA_ARCH: the GPUs compiled for
# (sm_80 A100, sm_90 H100/H200; PTX of the last one for newer GPUs).
CUDA      ?= 0
ifeq ($(origin CUDA_HOME),undefined)
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(firstword $(shell command -v nvcc 2>/dev/null) \
             $(wildcard /usr/local/cuda/bin/nvcc $(CURDIR)/var/cuda/nvidia/cu13/bin/nvcc)))
endif
CUDA_ARCH ?= 80 90
CUDA_LIB   = $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib))
NVCCFLAGS  = -O3 -g -std=c++20 -I. $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
             -gencode arch=compute_$(lastword $(CUDA_ARCH)),code=compute_$(lastword $(CUDA_ARCH)) \
             -Xcompiler -Wall,-Wextra,-Werror,-fno-omit-frame-pointer

# MODEL: a GGUF path or a name scripts/fetch-model.sh knows (`bash scripts/fetch-model.sh --list`:
# smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b), e.g. `make model run MODEL=qwen2.5-coder-0.5b`.
MODEL    ?= models/SmolLM2-135M-Instruct.Q4_1.gguf
RLLA4K   := var/data/sources/toolrl_rlla4k_test.jsonl
MODEL_PATH = $(shell bash scripts/fetch-model.sh --path '$(MODEL)')
PORT     ?= 8080

LIB_SRC  := $(wildcard base/*.c protocol/*.c model/*.c server/*.c store/*.c data/*.c eval/*.c trainer/*.c)
CLI_SRC  := $(wildcard cli/*.c)
TEST_SUPPORT := $(wildcard tests/support/*.c)
TESTS    := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
ifeq ($(CUDA),1)
ifeq ($(CUDA_HOME),)
$(error CUDA=1: no nvcc found (bash scripts/setup-cuda.sh installs the toolkit, or set CUDA_HOME))
endif
LIB_OBJ  := $(filter-out $(BUILD)/model/ops_cuda_none.o,$(LIB_OBJ)) $(BUILD)/model/ops_cuda.o
LDLIBS   += -L$(CUDA_LIB) -Wl,-rpath,$(CUDA_LIB) -lcublas -lcudart -lstdc++
endif
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
SUP_OBJ  := $(TEST_SUPPORT:%.c=$(BUILD)/%.o)
TEST_BIN := $(TESTS:%=$(BUILD)/tests/%)

.PHONY: all run test check check-layers check-api check-asan check-cuda check-web deps deps-test model clean bench data fuzz fuzz-smoke FORCE
.SECONDARY:  # keep object files between builds
all: $(BUILD)/toolrl

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/model/ops_cuda.o: model/ops_cuda.cu
	@mkdir -p $(dir $@)
	@$(CUDA_HOME)/bin/nvcc $(NVCCFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

# The link's configuration: rewritten (so binaries relink) only when CUDA changes.
$(BUILD)/link.cfg: FORCE
	@mkdir -p $(BUILD); echo 'CUDA=$(CUDA)' | cmp -s - $@ || echo 'CUDA=$(CUDA)' > $@
FORCE:

$(BUILD)/toolrl: $(CLI_OBJ) $(LIB_OBJ) $(BUILD)/link.cfg
	@$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)
	@[ "$(BUILD)" = build ] && ln -sf $(BUILD)/toolrl toolrl || true

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(SUP_OBJ) $(LIB_OBJ) $(BUILD)/link.cfg
	@$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS) -lcmocka

# The CLI's test links the subcommands' tables (all of cli/ but main) and runs the built toolrl.
$(BUILD)/tests/test_cli: $(BUILD)/tests/test_cli.o $(filter-out $(BUILD)/cli/main.o,$(CLI_OBJ)) $(SUP_OBJ) $(LIB_OBJ) \
                         $(BUILD)/link.cfg | $(BUILD)/toolrl
	@$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS) -lcmocka

# The CUDA backend's test: model/ops_cuda.cu compiled by g++ against the emulation
# (tests/support/cuemu.h) in place of either ops_cuda object.
CUEMU_OBJ := $(BUILD)/tests/support/cuemu.o $(BUILD)/tests/support/ops_cuda_emu.o
$(BUILD)/tests/support/cuemu.o: tests/support/cuemu.cpp
	@mkdir -p $(dir $@)
	@$(CXX) $(CUEMU_FLAGS) -c $< -o $@

$(BUILD)/tests/support/ops_cuda_emu.o: model/ops_cuda.cu
	@mkdir -p $(dir $@)
	@$(CXX) $(CUEMU_FLAGS) -x c++ -include tests/support/cuemu.h -DOPS_CUDA_STAGE_FLOATS=3000 -c $< -o $@

$(BUILD)/tests/test_ops_cuda: $(BUILD)/tests/test_ops_cuda.o $(SUP_OBJ) $(filter-out $(BUILD)/model/ops_cuda%.o,$(LIB_OBJ)) \
                              $(CUEMU_OBJ) $(BUILD)/link.cfg
	@$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS) -lcmocka -lstdc++

# store/migrations.c is generated from migrations/*.sql (and committed); rebuilt when they change.
store/migrations.c: $(wildcard migrations/*.sql) scripts/embed-migrations.sh
	bash scripts/embed-migrations.sh migrations > $@.tmp && mv $@.tmp $@

# A tiny random model for the Python integration tests (tests/tools/tiny_model.c).
$(BUILD)/tiny-model: $(BUILD)/tests/tools/tiny_model.o $(SUP_OBJ) $(LIB_OBJ)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# Training throughput of the fp32 trainer (bench/bench_train.c).
$(BUILD)/bench_train: bench/bench_train.c $(BUILD)/cli/opts.o $(LIB_OBJ)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bench_matmul: bench/bench_matmul.c $(LIB_OBJ)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bench_attention: bench/bench_attention.c $(LIB_OBJ)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# Fuzzing (libFuzzer, clang): fuzz/fuzz_*.c over the request, reply, constraint and training-
# line parsers. `make fuzz` runs each target FUZZ_SECONDS (new inputs go to build-fuzz/, the
# committed seeds stay as they are); `make fuzz-smoke` replays the committed corpus only.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -std=c11 \
                -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unknown-pragmas -I. \
                $(if $(BLAS_INC),-I$(BLAS_INC))
FUZZ_LIB_OBJ := $(patsubst %.c,build-fuzz/%.o,$(filter-out eval/runner.c,$(wildcard base/*.c protocol/*.c model/*.c data/*.c eval/*.c)) server/chat_request.c \
                server/chat_response.c)

build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	@clang $(FUZZ_CFLAGS) -c $< -o $@

build-fuzz/fuzz_%: build-fuzz/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	@clang -fsanitize=fuzzer,address,undefined $^ -o $@ -lopenblas -lpcre2-8 -lcjson -lm

fuzz: $(FUZZ_TARGETS:%=build-fuzz/%)
	@for t in $(FUZZ_TARGETS); do mkdir -p build-fuzz/corpus/$$t; echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  ./build-fuzz/$$t build-fuzz/corpus/$$t fuzz/corpus/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  > build-fuzz/$$t.log 2>&1; rc=$$?; tail -4 build-fuzz/$$t.log; [ $$rc -eq 0 ] || exit 1; done

fuzz-smoke: $(FUZZ_TARGETS:%=build-fuzz/%)
	@for t in $(FUZZ_TARGETS); do ./build-fuzz/$$t fuzz/corpus/$$t -runs=0 > build-fuzz/$$t.smoke.log 2>&1 \
	  || { tail -30 build-fuzz/$$t.smoke.log; exit 1; }; echo "$$t: $$(ls fuzz/corpus/$$t | wc -l) inputs replayed"; done

# Debian packages: deps for building and serving; deps-test also the tests' (scripts/setup.sh).
# With CUDA=1 also the CUDA toolkit (scripts/setup-cuda.sh).
deps:
	@bash scripts/setup.sh
	@[ "$(CUDA)" != 1 ] || bash scripts/setup-cuda.sh

deps-test:
	@bash scripts/setup.sh --test

# The training mix (docs/data.md): every shared training source, converted, filtered, deduplicated,
# evaluation questions dropped; var/data/train.jsonl and var/data/val.jsonl.
data: deps $(BUILD)/toolrl $(RLLA4K)
	@bash scripts/make-train-set.sh var/data

# The one parquet training file, as JSONL (scripts/setup-data.sh; pyarrow from PyPI).
$(RLLA4K): scripts/parquet-to-jsonl.py scripts/setup-data.sh
	@bash scripts/setup-data.sh $@

model:
	@bash scripts/fetch-model.sh '$(MODEL)'

run: deps model all
	./$(BUILD)/toolrl serve --model '$(MODEL_PATH)' --port $(PORT) --workers 1

# The layer check (scripts/check-layers.sh, docs/architecture.md), then every test binary; each
# prints its cmocka summary. Fails if an include breaks the layers or any test fails.
check: check-layers $(BUILD)/toolrl $(TEST_BIN) $(RLLA4K)
	@bash scripts/run-tests.sh $(BUILD)

# Every #include "folder/x.h" follows the folder layers; the build has only -I. (and BLAS's).
check-layers:
	@bash scripts/check-layers.sh

# The CUDA build compiles and links (nothing on a machine without a GPU can run its kernels;
# tests/test_ops_cuda.c runs them through the emulation): only model/ops_cuda.cu is compiled
# anew, and toolrl is linked with it and cuBLAS as $(BUILD)/cuda/toolrl, leaving
# $(BUILD)/toolrl as it is. The toolkit comes from scripts/setup-cuda.sh where it is missing.
check-cuda: $(CLI_OBJ) $(LIB_OBJ)
	@bash scripts/setup-cuda.sh
	@$(MAKE) --no-print-directory CUDA=1 $(BUILD)/cuda/toolrl

$(BUILD)/cuda/toolrl: $(CLI_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
	@echo "check-cuda: $@ compiled and linked with $(CUDA_HOME) (sm $(CUDA_ARCH)); not run here"

check-asan:
	ASAN_OPTIONS=detect_leaks=1 $(MAKE) BUILD=build-asan OPT=-O1 SANFLAGS="$(SAN)" check

# The OpenAI-SDK integration tests against a real `toolrl serve` on loopback.
check-api: $(BUILD)/toolrl
	bash tests/api/run.sh

# The dashboard in headless Chromium against a real server.
check-web: deps-test $(BUILD)/toolrl
	bash tests/web/run.sh

test: deps-test model
	$(MAKE) check
	$(MAKE) check-cuda
	$(MAKE) check-api
	$(MAKE) check-web
	$(MAKE) fuzz-smoke
	$(MAKE) check-asan

bench: deps model all
	@MODEL='$(MODEL_PATH)' bash bench/run.sh

clean:
	rm -rf build build-asan toolrl

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
