# Build, test, demo and bench for the sessions-vs-JWT cluster project.
# `make` builds every program into bin/; `make SANITIZER=address test` builds and tests an
# ASan+UBSan build in build/address/ without touching bin/.

PKG_CONFIG ?= pkg-config
PKGS    := libevent libevent_openssl libevent_pthreads openssl hiredis jansson
PROGS   := session_server jwt_server balancer loadgen authctl relay
PYTHON  ?= /usr/bin/python3
# The per-program rules below are generated before `all:`; without this make would take the
# first of them as the default goal and build one archive instead of the programs.
.DEFAULT_GOAL := all

CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -Icommon $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifeq ($(SANITIZER),address)
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else ifeq ($(SANITIZER),fuzzer)
  CC := clang
  SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else ifneq ($(SANITIZER),)
  SANFLAGS := -fsanitize=$(SANITIZER) -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
ifneq ($(SANITIZER),)
  BUILD ?= build/$(SANITIZER)
  BIN   ?= $(BUILD)/bin
else
  BUILD ?= build/release
  BIN   ?= bin
endif

ifneq ($(V),1)
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2)
else
  say = @:
endif

ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
COMMON_OBJ := $(call obj,$(wildcard common/*.c))
# Every program folder holds main.c plus modules; the modules also go into an archive that
# the unit tests link against.
define prog_rules
$(1)_OBJ := $$(call obj,$$(filter-out $(1)/main.c,$$(wildcard $(1)/*.c)))
$(BUILD)/lib$(1).a: $(BUILD)/empty.o $$($(1)_OBJ)
	$$(call say,AR,$$@)
	$(Q)rm -f $$@ && ar rcs $$@ $$^
$(BIN)/$(1): $(BUILD)/$(1)/main.o $$($(1)_OBJ) $(BUILD)/libcommon.a
	$$(call say,LD,$$@)
	$(Q)mkdir -p $$(@D) && $$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rules,$(p))))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps build test demo bench clean fuzz fuzz-build hardening test-web screenshot
all: deps build
build: $(addprefix $(BIN)/,$(PROGS)) $(UNIT_BIN)

deps:
	$(Q)scripts/deps.sh test

$(BUILD)/empty.o:
	$(Q)mkdir -p $(@D) && echo 'extern int empty_unit_; int empty_unit_;' | $(CC) -x c -c -o $@ -

$(BUILD)/libcommon.a: $(COMMON_OBJ)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# tests/unit/test_<program>*.c and test_regress_<program>*.c also link that program's modules;
# the others only common/.
define unit_rules
$(BUILD)/tests/$(1): $(BUILD)/tests/unit/$(1).o $(foreach p,$(PROGS),$(if $(filter test_$(p)% test_regress_$(p)%,$(1)),$(BUILD)/lib$(p).a)) $(BUILD)/libcommon.a
	$$(call say,LD,$$@)
	$(Q)mkdir -p $$(@D) && $$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(basename $(notdir $(UNIT_SRC))),$(eval $(call unit_rules,$(t))))

# libFuzzer harnesses tests/fuzz/fuzz_<name>.c, built with clang (make SANITIZER=fuzzer ...);
# like the unit tests, fuzz_<program>* also links that program's modules.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
define fuzz_rules
$(BUILD)/fuzz/$(1): $(BUILD)/tests/fuzz/$(1).o $(foreach p,$(PROGS),$(if $(filter fuzz_$(p)%,$(1)),$(BUILD)/lib$(p).a)) $(BUILD)/libcommon.a
	$$(call say,LD,$$@)
	$(Q)mkdir -p $$(@D) && $$(CC) $$(ALL_LDFLAGS) -fsanitize=fuzzer -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(basename $(notdir $(FUZZ_SRC))),$(eval $(call fuzz_rules,$(t))))
fuzz-build: $(FUZZ_BIN)

# Runs every harness for FUZZ_SECONDS on a copy of its seed corpus (tests/fuzz/corpus/<name>).
FUZZ_SECONDS ?= 60
fuzz: deps
	$(Q)scripts/deps.sh hardening
	$(Q)$(MAKE) --no-print-directory SANITIZER=fuzzer fuzz-build
	$(Q)scripts/fuzz.sh build/fuzzer/fuzz $(FUZZ_SECONDS)

# Fuzzing for FUZZ_SECONDS per harness, then the servers and the balancer under valgrind.
hardening: deps build
	$(Q)scripts/deps.sh hardening
	$(Q)BIN=$(abspath $(BIN)) MAKE=$(MAKE) scripts/hardening.sh $(FUZZ_SECONDS)

# One pytest run covers the C unit tests (each case is a pytest item), the black-box tests and
# the browser test (deps installs Chromium and node; playwright-core comes from npm, once).
test: deps build
	$(Q)[ -d tests/web/node_modules/playwright-core ] || \
	    (cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
	$(Q)AUTH_BIN=$(abspath $(BIN)) AUTH_UNIT=$(abspath $(BUILD)/tests) SANITIZER=$(SANITIZER) \
	    $(PYTHON) -m pytest -q -p no:cacheprovider tests $(PYTEST_ARGS)

# Drives the teaching page in headless Chromium (Debian's chromium, playwright-core from npm);
# its screenshot goes to build/web/screenshot.png. `make screenshot` does the same and replaces
# the README's picture, web/screenshot.png, on purpose (then commit it).
test-web: deps build
	$(Q)scripts/deps.sh web
	$(Q)cd tests/web && npm ci --no-audit --no-fund --loglevel=error
	$(Q)AUTH_BIN=$(abspath $(BIN)) node tests/web/test_page.mjs

screenshot: test-web
	$(Q)cp build/web/screenshot.png web/screenshot.png
	$(Q)echo "web/screenshot.png updated: look at it, then commit it with the change it shows"

demo: deps build
	$(Q)AUTH_BIN=$(abspath $(BIN)) scripts/demo.sh $(DEMO_ARGS)

bench: deps build
	$(Q)scripts/deps.sh bench && AUTH_BIN=$(abspath $(BIN)) scripts/bench.sh $(BENCH_ARGS)

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
