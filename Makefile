# psm: the front door. `make demo` shows it working, `make test` runs every
# test, `make bench` measures. One cargo profile (release) is used for
# everything so the workspace is built once.

CARGO    ?= cargo
PREFIX   ?= /usr/local
DESTDIR  ?=
LIBDIR   ?= $(PREFIX)/lib
LIBEXECDIR ?= $(PREFIX)/libexec
INCLUDEDIR ?= $(PREFIX)/include
DOCDIR   ?= $(PREFIX)/share/doc/psm
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDUSERDIR ?= $(LIBDIR)/systemd/user
BUILD    := $(CURDIR)/target/release
CBUILD   := $(CURDIR)/build
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
SOMAJOR  := $(firstword $(subst ., ,$(VERSION)))

.PHONY: all build header check-header examples demo test test-deps cargo-test lint \
        ctest install-check bench fuzz install clean

all: build examples

build:
	$(CARGO) build --release --workspace --locked
	ln -sf libpsm.so $(BUILD)/libpsm.so.$(SOMAJOR)

# Copy the header cbindgen just generated over the committed one.
header: build
	cp $(BUILD)/include/psm.h include/psm.h

check-header: build
	@diff -u include/psm.h $(BUILD)/include/psm.h || \
	  { echo "include/psm.h differs from the code: run 'make header' and commit it"; exit 1; }

examples: build
	$(MAKE) -C examples-c PSM_INCLUDE=$(CURDIR)/include PSM_LIBDIR=$(BUILD)

demo: examples
	@sh examples-c/demo.sh $(BUILD)

test-deps:
	@sh .ci/install-deps.sh

cargo-test: build
	$(CARGO) test --release --workspace --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets --locked -- -D warnings

ctest: examples
	cmake -S ffi-tests -B $(CBUILD)/ffi-tests -DPSM_INCLUDE=$(CURDIR)/include \
	  -DPSM_LIBDIR=$(BUILD) -DPSMD=$(BUILD)/psmd -DPSM_EXAMPLES=$(CURDIR)/examples-c
	cmake --build $(CBUILD)/ffi-tests -j2
	cd $(CBUILD)/ffi-tests && ctest --output-on-failure --no-tests=error

install-check: examples
	sh tests/install-check.sh

test: test-deps check-header lint cargo-test ctest install-check

bench: examples
	$(CARGO) build --release --locked -p psm --example digest_bench
	$(CARGO) build --release --locked -p tls-bench
	$(MAKE) -C bench PSM_INCLUDE=$(CURDIR)/include PSM_LIBDIR=$(BUILD)
	@sh bench/run.sh $(BUILD)

# Coverage-guided fuzzing of the frame decoder and the request dispatcher
# (nightly + cargo-fuzz). FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 300
fuzz:
	cd fuzz && $(CARGO) +nightly fuzz run frame_decoder -- -max_total_time=$(FUZZ_SECONDS)
	cd fuzz && $(CARGO) +nightly fuzz run dispatch -- -max_total_time=$(FUZZ_SECONDS)

install: build
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBEXECDIR)
	install -m 0755 $(BUILD)/libpsm.so $(DESTDIR)$(LIBDIR)/libpsm.so.$(VERSION)
	ln -sf libpsm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpsm.so.$(SOMAJOR)
	ln -sf libpsm.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libpsm.so
	install -m 0644 $(BUILD)/libpsm.a $(DESTDIR)$(LIBDIR)/libpsm.a
	install -m 0644 include/psm.h $(DESTDIR)$(INCLUDEDIR)/psm.h
	install -m 0755 $(BUILD)/psmd $(DESTDIR)$(LIBEXECDIR)/psmd
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' \
	  psm.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/psm.pc
	install -d $(DESTDIR)$(SYSTEMDUSERDIR) $(DESTDIR)$(DOCDIR)
	for u in psmd.socket psmd.service; do \
	  sed -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|; s|@DOCDIR@|$(DOCDIR)|' systemd/$$u > $(DESTDIR)$(SYSTEMDUSERDIR)/$$u; \
	  chmod 0644 $(DESTDIR)$(SYSTEMDUSERDIR)/$$u; \
	done
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(BUILD)/psm $(DESTDIR)$(BINDIR)/psm
	$(BUILD)/psm man > $(DESTDIR)$(MANDIR)/man1/psm.1
	$(BUILD)/psmd --man > $(DESTDIR)$(MANDIR)/man8/psmd.8
	sed -e 's|@VERSION@|$(VERSION)|' man/libpsm.3 > $(DESTDIR)$(MANDIR)/man3/libpsm.3
	$(BUILD)/psm completion bash > $(DESTDIR)$(BASHCOMPDIR)/psm

clean:
	$(CARGO) clean
	rm -rf $(CBUILD)
	$(MAKE) -C examples-c clean
	$(MAKE) -C bench clean
