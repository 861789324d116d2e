# toolrl: one binary (`toolrl`) and a cmocka test suite.
#   make run    install what is missing, fetch the default model, build, start the server
#   make test   the same set-up, then every test, the OpenAI-SDK tests against a live server,
#               then every C test again under ASan+UBSan
#   make        just build
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3
SANFLAGS ?=
NATIVE  := $(shell $(CC) -march=native -E -x c /dev/null >/dev/null 2>&1 && echo -march=native)
BLAS_INC := $(firstword $(wildcard /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas))
CFLAGS  := $(OPT) -g $(NATIVE) -fno-omit-frame-pointer $(SANFLAGS) \
           -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -I. -Imodel -Iserver -Icli -Istore -Idata -Ieval -Itrainer \
           $(if $(BLAS_INC),-I$(BLAS_INC)) -MMD -MP
LDLIBS  := $(SANFLAGS) -lopenblas -lpcre2-8 -lcjson -lmicrohttpd -lsqlite3 -lcrypto -lm -fopenmp
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined

MODEL    ?= models/SmolLM2-135M-Instruct.Q4_1.gguf
PORT     ?= 8080

LIB_SRC  := $(wildcard model/*.c server/*.c store/*.c data/*.c eval/*.c trainer/*.c)
CLI_SRC  := $(wildcard cli/*.c)
TEST_SUPPORT := $(wildcard tests/support/*.c)
TESTS    := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
SUP_OBJ  := $(TEST_SUPPORT:%.c=$(BUILD)/%.o)
TEST_BIN := $(TESTS:%=$(BUILD)/tests/%)

.PHONY: all run test check check-api check-asan check-web deps model clean bench data
.SECONDARY:  # keep object files between builds
all: $(BUILD)/toolrl

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/toolrl: $(CLI_OBJ) $(LIB_OBJ)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
	@[ "$(BUILD)" = build ] && ln -sf $(BUILD)/toolrl toolrl || true

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(SUP_OBJ) $(LIB_OBJ)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) -lcmocka

# store/migrations.c is generated from migrations/*.sql (and committed); rebuilt when they change.
store/migrations.c: $(wildcard migrations/*.sql) scripts/embed-migrations.sh
	bash scripts/embed-migrations.sh migrations > $@.tmp && mv $@.tmp $@

# A tiny random model for the Python integration tests (tests/tools/tiny_model.c).
$(BUILD)/tiny-model: $(BUILD)/tests/tools/tiny_model.o $(SUP_OBJ) $(LIB_OBJ)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bench_matmul: bench/bench_matmul.c $(LIB_OBJ)
	@$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

deps:
	@bash scripts/setup.sh

# The ready training set (docs/data.md): shared xLAM + ToolACE + ToolRL, converted and filtered.
data: $(BUILD)/toolrl
	@bash scripts/make-train-set.sh var/data/train.jsonl

model:
	@bash scripts/fetch-model.sh

run: deps model all
	./$(BUILD)/toolrl serve --model $(MODEL) --port $(PORT) --workers 1

# Runs every test binary; each prints its cmocka summary. Fails if any test fails.
check: $(BUILD)/toolrl $(TEST_BIN)
	@bash scripts/run-tests.sh $(BUILD)

check-asan:
	ASAN_OPTIONS=detect_leaks=1 $(MAKE) BUILD=build-asan OPT=-O1 SANFLAGS="$(SAN)" check

# The OpenAI-SDK integration tests against a real `toolrl serve` on loopback.
check-api: $(BUILD)/toolrl
	bash tests/api/run.sh

# The dashboard in headless Chromium against a real server.
check-web: $(BUILD)/toolrl
	bash tests/web/run.sh

test: deps model
	$(MAKE) check
	$(MAKE) check-api
	$(MAKE) check-web
	$(MAKE) check-asan

bench: deps model all
	@bash bench/run.sh

clean:
	rm -rf build build-asan toolrl

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
