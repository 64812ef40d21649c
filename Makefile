# lockstep — build, test, install.  Non-recursive; modules are picked up by
# wildcard so adding a module is adding its files:
#   lib/*.c                 -> liblockstep.a   (engine-agnostic core)
#   connectors/*/*.c        -> libconnectors.a (postgres, mysql, kafka)
#   daemon/*.c              -> lockstepd, lockstepctl (mains) + libdaemon.a
#   tests/test_*.c          -> unit tests (check), one binary per module
#   tests/it_*.c            -> integration tests (check, real servers)
#   tests/helpers/*.c       -> test support library (server starters, ...)
#   tests/tools/*.c         -> standalone test programs, one main per file
#   tests/fuzz/fuzz_*.c     -> libFuzzer targets (clang)

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= gcc
SAN     ?=

PKGS     := libuv libpq libmariadb rdkafka inih libsystemd libxxhash jansson
CPPFLAGS += -I. -Ilib -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS))
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -fno-strict-aliasing
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -lpthread -lm
ifeq ($(SAN),1)
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
CHECK_LIBS := $(shell pkg-config --libs check)

LIB_SRC   := $(wildcard lib/*.c)
CONN_SRC  := $(wildcard connectors/*/*.c)
DAEMON_MAINS := daemon/lockstepd.c daemon/lockstepctl.c
DAEMON_SRC := $(filter-out $(DAEMON_MAINS),$(wildcard daemon/*.c))
HELP_SRC  := $(wildcard tests/helpers/*.c)
UNIT_SRC  := $(wildcard tests/test_*.c)
IT_SRC    := $(wildcard tests/it_*.c)
TOOL_SRC  := $(wildcard tests/tools/*.c)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LIBLS   := $(BUILD)/liblockstep.a
LIBCONN := $(BUILD)/libconnectors.a
LIBDMN  := $(BUILD)/libdaemon.a
LIBHELP := $(BUILD)/libtesthelp.a
BINS    := $(BUILD)/lockstepd $(BUILD)/lockstepctl
UNITS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
ITS     := $(patsubst tests/%.c,$(BUILD)/tests/%,$(IT_SRC))
TOOLS   := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
ALL_LIBS := $(LIBDMN) $(LIBCONN) $(LIBLS)

.PHONY: all deps check unit integration asan fuzz fuzz-smoke demo bench install clean tests
all: $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBLS): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBCONN): $(call obj,$(CONN_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBDMN): $(call obj,$(DAEMON_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(LIBHELP): $(call obj,$(HELP_SRC))
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

$(BUILD)/lockstepd: $(call obj,daemon/lockstepd.c) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS)
$(BUILD)/lockstepctl: $(call obj,daemon/lockstepctl.c) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIBHELP) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBHELP) $(ALL_LIBS) $(CHECK_LIBS) $(LDLIBS)
$(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o $(LIBHELP) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBHELP) $(ALL_LIBS) $(LDLIBS)

# Fuzzers are built with clang and libFuzzer, always with ASan/UBSan.  The
# tree is compiled once with coverage instrumentation into fuzzobj/ (the gcc
# archives carry none) and each fuzzer links what it needs from that archive.
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -g -O1 -std=c11 $(FUZZ_SAN)
FUZZ_OBJ    := $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(LIB_SRC) $(CONN_SRC))
$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(BUILD)/libfuzztree.a: $(FUZZ_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/libfuzztree.a
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libfuzztree.a $(LDLIBS)

tests: $(BINS) $(UNITS) $(ITS) $(TOOLS)

# Debian packages for build, tests, demo and bench.  `make deps` installs
# what is missing and does nothing when everything is present.
DEB_PKGS := build-essential pkg-config clang libclang-rt-14-dev \
  libuv1-dev libpq-dev libmariadb-dev librdkafka-dev check libinih-dev \
  libsystemd-dev libxxhash-dev libjansson-dev \
  postgresql-15 postgresql-client-15 mariadb-server mariadb-client kcat \
  systemd procps gnuplot-nox sysbench jq bc
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

check: deps
	$(MAKE) tests
	$(MAKE) BUILD=build-asan SAN=1 $(patsubst $(BUILD)/%,build-asan/%,$(UNITS))
	$(MAKE) fuzzers
	tests/run --build $(BUILD) --asan build-asan

unit: $(UNITS)
	tests/run --build $(BUILD) --only unit
integration: tests
	tests/run --build $(BUILD) --only integration
asan:
	$(MAKE) BUILD=build-asan SAN=1 $(patsubst $(BUILD)/%,build-asan/%,$(UNITS))
	tests/run --build build-asan --only unit
fuzzers: $(FUZZERS)
fuzz: $(FUZZERS)
	tests/run --build $(BUILD) --only fuzz --fuzz-seconds $${FUZZ_SECONDS:-60}

demo: deps all $(TOOLS)
	bench/demo.sh

bench: deps all tests
	bench/run

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system \
	  $(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d \
	  $(DESTDIR)$(PREFIX)/share/doc/lockstep
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' systemd/lockstepd@.service \
	  > $(DESTDIR)$(PREFIX)/lib/systemd/system/lockstepd@.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/lockstepd@.service
	install -m 0644 systemd/lockstep.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/lockstep.conf
	install -m 0644 systemd/lockstep.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/lockstep.conf
	install -m 0644 systemd/example.conf $(DESTDIR)$(PREFIX)/share/doc/lockstep/

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
