# spm-memory: a QEMU device for specific-purpose (soft-reserved) memory.
#
#   make demo     set up what is missing, build, and show the device at work
#   make check    set up what is missing, build, and run all tests
#
# Other targets: deps, source, guest-deps, qemu, tree, export, clean,
# distclean (see README.md).

BUILD    := $(CURDIR)/build
export BUILD
PATCHES  := $(CURDIR)/patches/qemu
PREP     := $(CURDIR)/patches/qemu-build
S        := $(CURDIR)/scripts

# qtests of the series (spm-memory-test) and stock ones that must keep passing
QTESTS   := spm-memory-test bios-tables-test numa-test device-introspect-test \
            qom-test test-hmp

.PHONY: all demo check check-qtests check-guest fuzz sanitize series \
        series-build bench bench-report deps source guest-deps tree qemu \
        qtests export clean distclean

all: qemu

# host packages (apt-get install); private apt configuration of the suites
# that are only downloaded from (build/apt)
deps:
	@$(S)/host-deps.sh

# QEMU 10.0.x and SeaBIOS >= 1.17.0 sources
source: deps
	@$(S)/fetch-qemu.sh
	@$(S)/fetch-seabios.sh > /dev/null

# what guests boot: kernels, initramfs, OVMF, stock SeaBIOS. Tests and the
# demo only use these (they never download or build).
guest-deps: deps
	@$(S)/guest-deps.sh

tree: source
	@PATCHES=$(PATCHES) PREP=$(PREP) $(S)/mktree.sh

qemu: tree
	@$(S)/build-qemu.sh

qtests: tree
	@$(S)/build-qemu.sh $(addprefix tests/qtest/,$(QTESTS))

# all tests: series checkpatch, qtests, guest end-to-end tests, a fuzz slice
check: qtests guest-deps
	@$(S)/check.sh $(QTESTS)

check-qtests: qtests
	@$(S)/run-qtests.sh $(QTESTS)

# GUEST_TESTS=EXPR selects tests like pytest -k
check-guest: qemu guest-deps
	@cd tests/guest && /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	    $(if $(GUEST_TESTS),-k "$(GUEST_TESTS)")

# randomized configurations: FUZZ_COUNT (1000), FUZZ_SEED
fuzz: qemu
	@/usr/bin/python3 tests/fuzz/spm_fuzz.py --count $(or $(FUZZ_COUNT),1000) \
	    $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))

# ASan + UBSan build; spm-memory-test and a guest boot on it
sanitize: tree guest-deps
	@$(S)/sanitize.sh

# the QEMU series as it would be mailed: build/series, checkpatch on each
series: tree
	@$(S)/series.sh

# ... and build qemu-system-x86_64 at every patch (about 15 minutes)
series-build: tree
	@$(S)/series.sh --build-each

# benchmark against pc-dimm and RAM: measure into $(BENCH_OUT)/bench.json
# (BENCH_ARGS: options of tests/bench/spm_bench.py, e.g. --quick), then the
# report from it: bench.md, bench.png and bench.svg beside it
BENCH_OUT ?= $(BUILD)/bench
bench: qemu guest-deps
	@/usr/bin/python3 tests/bench/spm_bench.py --out $(BENCH_OUT) $(BENCH_ARGS); \
	    rc=$$?; [ $$rc -le 1 ] || exit $$rc; \
	    /usr/bin/python3 tests/bench/report.py $(BENCH_OUT)/bench.json && exit $$rc

# the report again from the last run's bench.json (measures nothing)
bench-report:
	@/usr/bin/python3 tests/bench/report.py $(BENCH_OUT)/bench.json

demo: qemu guest-deps
	@/usr/bin/python3 $(S)/demo.py

# Write the working tree's commits (base..HEAD) back to patches/qemu.
export:
	@PREP=$(PREP) $(S)/export-series.sh $(PATCHES)

clean:
	rm -rf $(BUILD)/qemu-build $(BUILD)/logs

# Also removes the working tree: run "make export" first.
distclean:
	rm -rf $(BUILD)
