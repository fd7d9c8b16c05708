# SPDX-License-Identifier: Apache-2.0
# mcpfence: vmlinux.h -> %.bpf.o -> %.skel.h -> mcpfence (libbpf-bootstrap's shape).
#   make            build ./build/mcpfence
#   make demo       set up, build, and run the built-in example
#   make test       set up, build, and run every test tier (unit, sanitizers, valgrind, bpf, e2e,
#                   kernels)
#   make test-kernels  the BPF tests and an attach end to end on Debian's 6.1 and 6.12, in QEMU
#   make bench      run the benchmarks
#   make fuzz       long fuzzing runs (FUZZ_SECONDS=600), then their corpora through make diff
#   make diff       the differential tier: mcpfence's view against the servers' own parsers
#   make install    PREFIX=/usr/local DESTDIR= (SBINDIR, MANDIR, SYSCONFDIR, UNITDIR, ...)
#   make deb        the Debian package, in build/deb/ (dpkg-buildpackage, lintian)
#   V=1             show full commands
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:

BUILD   ?= build
CLANG   ?= clang
CC      ?= cc
BPFTOOL ?= bpftool
ARCH    := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/;s/ppc64le/powerpc/')
PKGS    := libbpf jansson libpcre2-8 libcrypto hiredis libmicrohttpd libcurl

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

ifeq ($(SAN),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  ?= -O2 -g
override CFLAGS += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers $(SAN_FLAGS) -I$(BUILD) -Iuser -Ibpf $(PKG_CFLAGS) -MMD -MP
override LDFLAGS += $(SAN_FLAGS)
LDLIBS  += $(PKG_LIBS) -lelf -lz -lpthread -lm

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -MMD -MP \
	-I$(BUILD) -Ibpf -I/usr/include/$(shell uname -m)-linux-gnu

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
USER_SRCS  := $(wildcard user/*.c)
USER_OBJS  := $(patsubst user/%.c,$(BUILD)/user/%.o,$(USER_SRCS))
LIB_OBJS   := $(filter-out $(BUILD)/user/main.o,$(USER_OBJS))
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
BPFT_SRCS  := $(wildcard tests/bpf/test_*.c)
BPFT_BINS  := $(patsubst tests/bpf/%.c,$(BUILD)/tests/bpf/%,$(BPFT_SRCS))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
DIFF_VIEW  := $(BUILD)/tests/diff/view
TOOLS      := $(CLANG) llvm-strip $(BPFTOOL) pkg-config $(CC)

.PHONY: all setup setup-test demo test unit bpf-test test-kernels e2e valgrind san bench fuzz \
	diff clean format format-check tools man install uninstall deb setup-deb
all: $(BUILD)/mcpfence

# Every header a file includes is a prerequisite (-MMD -MP writes the lists beside the objects).
-include $(shell find $(BUILD) \( -path '$(BUILD)/package' -o -path '$(BUILD)/deb' \) -prune -o \
	-name '*.d' -type f -print 2>/dev/null)

# A fresh machine lacks the tools: say so, and what to run, before any recipe fails on it.
tools:
	$(Q)missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	pkg-config --exists $(PKGS) 2>/dev/null || missing="$$missing libraries($(PKGS))"; \
	if [ -n "$$missing" ]; then \
		echo "error: missing:$$missing. Run 'make setup' as root (it installs them with apt-get)," >&2; \
		echo "       or 'make test' / 'make demo', which do it first." >&2; exit 1; fi

setup:
	$(Q)scripts/setup.sh build
setup-test:
	$(Q)scripts/setup.sh test
setup-deb:
	$(Q)scripts/setup.sh deb

$(BUILD)/vmlinux.h: | tools
	$(Q)mkdir -p $(@D)
	$(Q)if [ ! -r /sys/kernel/btf/vmlinux ]; then \
		echo "error: /sys/kernel/btf/vmlinux is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y is needed)" >&2; exit 1; fi
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h
	$(Q)mkdir -p $(@D)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)llvm-strip -g $@

$(BUILD)/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

$(BUILD)/user/%.o: user/%.c $(SKELS) | tools
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/mcpfence: $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_OBJS)
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) $< $(LIB_OBJS) $(LDLIBS) -lcmocka -o $@

NET_HELPERS := $(BUILD)/tests/bpf/net_helpers.o
$(NET_HELPERS): tests/bpf/net_helpers.c | tools
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/bpf/%: tests/bpf/%.c $(LIB_OBJS) $(SKELS) $(NET_HELPERS)
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/bpf $(LDFLAGS) $< $(LIB_OBJS) $(NET_HELPERS) $(LDLIBS) -lcmocka -o $@

$(BUILD)/tests/diff/%: tests/diff/%.c $(LIB_OBJS)
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB_OBJS) $(LDLIBS) -o $@

$(BUILD)/bench/%: bench/%.c $(LIB_OBJS) $(SKELS) $(NET_HELPERS)
	$(Q)mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/bpf $(LDFLAGS) $< $(LIB_OBJS) $(NET_HELPERS) $(LDLIBS) -o $@

TIER ?= unit
unit: $(UNIT_BINS) $(BUILD)/mcpfence
	$(Q)MCPFENCE=$(BUILD)/mcpfence tests/run-suite.sh $(TIER) $(UNIT_BINS)

bpf-test: $(BPFT_BINS) $(BUILD)/mcpfence
	$(Q)tests/run-suite.sh bpf $(BPFT_BINS)

# Debian's kernels (fetched once into ~/.cache/mcpfence/kernels) booted in QEMU; KERNELS="6.1"
test-kernels: $(BPFT_BINS) $(BUILD)/mcpfence
	$(Q)tests/kernels/run.sh $(KERNELS)

# the hostile-input pass runs mcpfence under ASan+UBSan too: keep that binary current
e2e: $(BUILD)/mcpfence
	$(Q)$(MAKE) --no-print-directory BUILD=build-san SAN=1 CC=clang build-san/mcpfence
	$(Q)tests/run-e2e.sh $(BUILD)/mcpfence

valgrind: $(UNIT_BINS) $(BUILD)/mcpfence
	$(Q)MCPFENCE=$(BUILD)/mcpfence VALGRIND=1 tests/run-suite.sh valgrind $(UNIT_BINS)

san:
	$(Q)$(MAKE) --no-print-directory BUILD=build-san SAN=1 CC=clang TIER=san unit

# The README's test command: install what is missing, then every tier; one summary at the end.
test: setup-test
	$(Q)rm -f $(BUILD)/results.txt build-san/results.txt
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run-all.sh

# after the set-up step, in a make of its own: what pkg-config says is read once installed
demo: setup-test
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/e2e/demo.sh $(BUILD)/mcpfence

bench: $(BENCH_BINS) $(BUILD)/mcpfence
	$(Q)for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done
	$(Q)if [ -x bench/stdio.sh ]; then bench/stdio.sh $(BUILD)/mcpfence; fi

# the corpora the fuzzers grew go through the differential tier too: the servers' own parsers
# read every input the fuzzers found interesting
fuzz: $(DIFF_VIEW)
	$(Q)tests/fuzz/run.sh $${FUZZ_SECONDS:-600}; rc=$$?; \
		DIFF_VIEW=$(DIFF_VIEW) tests/diff/run.sh --fuzz-only || rc=1; exit $$rc

# mcpfence's view of the hostile corpus against the real parsers of servers (tests/diff/)
diff: $(DIFF_VIEW)
	$(Q)DIFF_VIEW=$(DIFF_VIEW) tests/diff/run.sh

# every C file of the project, in the style of .clang-format (the kernel's, 100 columns)
FORMAT_SRCS := $(wildcard user/*.[ch] bpf/*.[ch] tests/unit/*.[ch] tests/bpf/*.[ch] bench/*.[ch] \
	tests/fuzz/*.c tests/diff/*.c tests/kernels/*.c)
format:
	$(Q)clang-format -i $(FORMAT_SRCS)

# the format tier of make test: a file clang-format would change fails it
format-check:
	$(Q)tests/format-check.sh $(FORMAT_SRCS)

# ---- install: the layout of a Linux security tool (the Debian package uses it too) ----------
PREFIX        ?= /usr/local
SBINDIR       ?= $(PREFIX)/sbin
DATADIR       ?= $(PREFIX)/share
MANDIR        ?= $(DATADIR)/man
SYSCONFDIR    ?= /etc
UNITDIR       ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR   ?= $(PREFIX)/lib/tmpfiles.d
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
MANPAGES      := $(BUILD)/man/mcpfence.8 $(BUILD)/man/mcpfence-policy.5

$(BUILD)/man/%: docs/man/%.scd
	$(Q)mkdir -p $(@D)
	$(Q)command -v scdoc >/dev/null || { echo "error: scdoc is missing: run 'make setup' as root" >&2; exit 1; }
	$(call msg,SCDOC,$@)
	$(Q)scdoc <$< >$@

man: $(MANPAGES)

# the policies in force (SYSCONFDIR/mcpfence) are config: an existing file is never replaced
install: $(BUILD)/mcpfence $(MANPAGES)
	$(Q)install -Dm755 $(BUILD)/mcpfence $(DESTDIR)$(SBINDIR)/mcpfence
	$(Q)install -Dm644 $(BUILD)/man/mcpfence.8 $(DESTDIR)$(MANDIR)/man8/mcpfence.8
	$(Q)install -Dm644 $(BUILD)/man/mcpfence-policy.5 $(DESTDIR)$(MANDIR)/man5/mcpfence-policy.5
	$(Q)install -d $(DESTDIR)$(UNITDIR)
	$(Q)sed 's|@SBINDIR@|$(SBINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		dist/mcpfence-attach.service.in >$(DESTDIR)$(UNITDIR)/mcpfence-attach.service
	$(Q)chmod 644 $(DESTDIR)$(UNITDIR)/mcpfence-attach.service
	$(Q)sed 's|@SBINDIR@|$(SBINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		dist/mcpfence-daemon.service.in >$(DESTDIR)$(UNITDIR)/mcpfence-daemon.service
	$(Q)chmod 644 $(DESTDIR)$(UNITDIR)/mcpfence-daemon.service
	$(Q)install -Dm644 dist/mcpfence.tmpfiles $(DESTDIR)$(TMPFILESDIR)/mcpfence.conf
	$(Q)install -Dm644 dist/mcpfence.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/mcpfence
	$(Q)install -Dm644 dist/mcpfence.bash $(DESTDIR)$(COMPLETIONDIR)/mcpfence
	$(Q)install -d $(DESTDIR)$(DATADIR)/mcpfence/policies
	$(Q)install -m644 policies/*.json $(DESTDIR)$(DATADIR)/mcpfence/policies/
	$(Q)install -d -m755 $(DESTDIR)$(SYSCONFDIR)/mcpfence $(DESTDIR)$(SYSCONFDIR)/mcpfence/policies
	$(Q)for f in attach.conf policy.json; do \
		[ -e $(DESTDIR)$(SYSCONFDIR)/mcpfence/$$f ] || \
			install -m644 dist/$$f $(DESTDIR)$(SYSCONFDIR)/mcpfence/$$f; done

uninstall:
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/mcpfence $(DESTDIR)$(MANDIR)/man8/mcpfence.8 \
		$(DESTDIR)$(MANDIR)/man5/mcpfence-policy.5 $(DESTDIR)$(UNITDIR)/mcpfence-attach.service \
		$(DESTDIR)$(UNITDIR)/mcpfence-daemon.service $(DESTDIR)$(TMPFILESDIR)/mcpfence.conf $(DESTDIR)$(SYSCONFDIR)/logrotate.d/mcpfence \
		$(DESTDIR)$(COMPLETIONDIR)/mcpfence
	$(Q)rm -rf $(DESTDIR)$(DATADIR)/mcpfence
	$(Q)echo "uninstall: $(SYSCONFDIR)/mcpfence (the policies in force) is left in place"

# the Debian package, built by dpkg-buildpackage from a copy of the tree in build/deb/
deb: setup-deb
	$(Q)scripts/deb.sh $(BUILD)/deb

clean:
	$(Q)rm -rf build build-san
