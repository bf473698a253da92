# spm-memory: a QEMU device for specific-purpose (soft-reserved) memory.
#
#   make demo     set up what is missing, build, and show the device at work
#   make check    set up what is missing, build, and run all tests
#
# Set-up and builds (run by the two above when needed):
#   deps          host packages; the private apt configuration (build/apt)
#   source        resolve and fetch QEMU 10.0.x and SeaBIOS >= 1.17.0 again
#   tree          the QEMU working tree: pristine source + patches/ (build/qemu)
#   qemu          qemu-system-x86_64 with patched SeaBIOS (build/qemu-build)
#   qtests        qemu plus the qtests that check runs
#   guest-deps    what guests boot: kernels, initramfs, OVMF, stock SeaBIOS
#   hostvm        the initramfs of a guest that plays the host (with our QEMU)
#   libvirt-tree libvirt-build   libvirt 11.3.x + patches/libvirt (build/libvirt)
#   upstream-qemu upstream QEMU >= 11.1 with its sp-mem: Debian's build,
#                 extracted with its libraries (build/qemu-upstream)
# Tests, each one or two stages of make check (tests/check.sh; its
# CHECK_STAGES names in brackets), each target with only what it needs:
#   check-qtests [qtests]  check-guest [guest]  check-hostvm [hostvm]
#   fuzz [fuzz: 200 cases; make fuzz: 1000]  sanitize [sanitize]
#   check-libvirt [libvirt-series libvirt]  check-setup [setup]
#   series [series]  docs [docs]
# Also for the tests: breakages (the device broken on purpose in each way of
# tests/breakages/list; each must fail make check's stages).
# Also: series-build (every patch built and tested), demo-host (a dax device of a host through QEMU into a VM's tables),
# bench bench-report (the benchmark), export (the working trees'
# commits back to patches/qemu and patches/libvirt), clean, distclean.
# See README.md.
#
# Folders: setup/ set-up and builds, guest/ the guest image and its boot,
# spmtest/ the Python package of the test side, tests/ the tests.

BUILD    := $(CURDIR)/build
export BUILD
PATCHES  := $(CURDIR)/patches/qemu
PREP     := $(CURDIR)/patches/qemu-build
LVPATCHES := $(CURDIR)/patches/libvirt
PYTHON   := /usr/bin/python3
QB       := $(BUILD)/qemu-build
ASAN     := $(BUILD)/qemu-build-asan
DOCS     := $(BUILD)/qemu-docs
GB       := $(BUILD)/guest

# qtests of the series (spm-memory-test) and stock ones that must keep passing
QTESTS   := spm-memory-test bios-tables-test numa-test device-introspect-test \
            qom-test test-hmp
GUEST_KERNELS ?= 6.1 6.12 7.x

# demo and check make what they need PREP_JOBS recipes at a time: downloads,
# configure runs and initramfs images, mostly one core or the network each,
# then run beside the compiles. The set-up scripts are safe beside each
# other: downloads into build/dl take turns on its lock (upstream QEMU's
# has a folder of its own), images and env files that several recipes
# read are written by rename, and each build directory has one builder.
PREP_JOBS ?= 2

# Files made here, so that "make -n" tells what would be made:
SOURCE_ENV  := $(BUILD)/qemu-source.env
SEABIOS_ENV := $(BUILD)/seabios-source.env
TREE        := $(BUILD)/qemu/.git/spm-series
SEABIOS_BIN := $(BUILD)/seabios-out/bios-256k.bin
INITRAMFS   := $(foreach k,$(GUEST_KERNELS),$(GB)/initramfs-$(k).cpio.gz)
FIRMWARE    := $(GB)/firmware.env
HOSTVM      := $(GB)/hostvm-initramfs.cpio.gz
LVSOURCE_ENV := $(BUILD)/libvirt-source.env
LVTREE      := $(BUILD)/libvirt/.git/spm-series

.PHONY: all demo demo-host hostvm docs check check-prep breakages check-qtests check-hostvm check-libvirt check-setup check-guest fuzz sanitize series \
        series-build bench bench-report deps source guest-deps tree qemu \
        qtests export clean distclean FORCE

all: qemu

# --- set-up and builds -------------------------------------------------------

deps:
	@setup/deps.sh

source: deps
	@setup/fetch-qemu.sh
	@setup/fetch-seabios.sh > /dev/null

$(SOURCE_ENV): | deps
	@setup/fetch-qemu.sh
$(SEABIOS_ENV): | deps
	@setup/fetch-seabios.sh > /dev/null

# On the patch folders too (a removed patch changes its folder's time);
# mktree.sh refuses to replace a tree with work that is not in patches/.
$(TREE): $(SOURCE_ENV) $(PATCHES) $(PREP) $(wildcard $(PATCHES)/*.patch $(PREP)/*.patch)
	@PATCHES=$(PATCHES) PREP=$(PREP) setup/mktree.sh
tree: $(TREE)

$(SEABIOS_BIN): $(SEABIOS_ENV) patches/seabios $(wildcard patches/seabios/*.patch) \
                setup/build-seabios.sh
	@setup/build-seabios.sh > /dev/null

# configured once per change of the configure options; ninja does the rest
$(QB)/build.ninja: setup/configure-qemu.sh | $(TREE)
	@setup/configure-qemu.sh $(BUILD)/qemu $(QB)
$(ASAN)/build.ninja: setup/configure-qemu.sh | $(TREE)
	@setup/configure-qemu.sh --asan $(BUILD)/qemu $(ASAN)
$(DOCS)/build.ninja: setup/configure-qemu.sh | $(TREE)
	@setup/configure-qemu.sh --docs $(BUILD)/qemu $(DOCS)

# ninja decides what to rebuild; the binary's time changes only if it does
$(QB)/qemu-system-x86_64: FORCE $(TREE) $(QB)/build.ninja $(SEABIOS_BIN)
	@setup/build-qemu.sh $(QB)
qemu: $(QB)/qemu-system-x86_64

qtests: $(QB)/qemu-system-x86_64
	@setup/build-qemu.sh $(QB) $(addprefix tests/qtest/,$(QTESTS))

# Guests boot only these; tests and the demo never download or build.
# The kernel look-up runs every time (guest/kernel.sh answers from its file
# until the package lists change) and changes the file only for a new kernel,
# so the initramfs is rebuilt only then ("make -n", which cannot know the
# look-up's answer, lists both).
$(GB)/kernel-%.env: FORCE | deps
	@guest/kernel.sh $* > /dev/null
$(GB)/initramfs-%.cpio.gz: $(GB)/kernel-%.env guest/init.sh guest/spmtool.c \
                           guest/mkinitramfs.sh guest/initramfs.sh \
                           $(wildcard /bin/busybox)
	@guest/mkinitramfs.sh $* > /dev/null
$(FIRMWARE): FORCE | deps $(SEABIOS_ENV)
	@guest/firmware.sh --prepare > /dev/null
guest-deps: $(INITRAMFS) $(FIRMWARE)
	@guest/deps.sh $(GUEST_KERNELS)
.PRECIOUS: $(GB)/kernel-%.env $(GB)/initramfs-%.cpio.gz

# A guest that plays the host (tests/hostvm, demo-host): our QEMU and the
# dax reader guest/hostvm/daxhex.c inside the 6.12 guest.
$(HOSTVM): $(QB)/qemu-system-x86_64 $(GB)/kernel-6.12.env $(SEABIOS_BIN) \
           guest/initramfs.sh $(wildcard guest/hostvm/* /bin/busybox)
	@guest/hostvm/mkinitramfs.sh $(QB)/qemu-system-x86_64 > /dev/null
hostvm: $(HOSTVM)

# libvirt 11.3.x, Debian 13's source, with patches/libvirt (the native
# sp-mem model): fetched and verified once, a working tree like QEMU's
# (build/libvirt), then the smallest build with the QEMU driver, its
# daemons, virsh and its unit tests (ccache on; setup/libvirt-env.sh).
# upstream QEMU's sp-mem (Debian's QEMU >= 11.1, extracted with what it
# needs, not installed), the second emulator of the native libvirt test
UPSTREAM_QEMU := $(BUILD)/qemu-upstream/env
$(UPSTREAM_QEMU): setup/fetch-upstream-qemu.sh | deps
	@setup/fetch-upstream-qemu.sh
upstream-qemu: $(UPSTREAM_QEMU)

.PHONY: libvirt-source libvirt-tree libvirt-build upstream-qemu
$(LVSOURCE_ENV): | deps
	@setup/fetch-libvirt.sh
libvirt-source: deps
	@setup/fetch-libvirt.sh
$(LVTREE): $(LVSOURCE_ENV) $(LVPATCHES) $(wildcard $(LVPATCHES)/*.patch)
	@PATCHES=$(LVPATCHES) setup/mktree.sh libvirt
libvirt-tree: $(LVTREE)
libvirt-build: $(LVTREE)
	@setup/build-libvirt.sh

# --- tests -------------------------------------------------------------------

# every stage, one summary (tests/check.sh; CHECK_STAGES selects stages)
check:
	@$(MAKE) --no-print-directory -j$(PREP_JOBS) check-prep
	@tests/check.sh $(QTESTS)
check-prep: qtests guest-deps hostvm $(ASAN)/build.ninja $(DOCS)/build.ninja \
            libvirt-build $(UPSTREAM_QEMU)

check-qtests: qtests
	@tests/run-qtests.sh $(QTESTS)

# GUEST_TESTS=EXPR selects tests like pytest -k; GUEST_JOBS guests at a time
check-guest: qemu guest-deps $(UPSTREAM_QEMU)
	@$(PYTHON) -m pytest -q -p no:cacheprovider -n $(or $(GUEST_JOBS),2) tests/guest \
	    $(if $(GUEST_TESTS),-k "$(GUEST_TESTS)")

# the guest that plays the host; libvirt's unit tests and real daemons; the
# set-up on Debian 13 in a debootstrap'd root
check-hostvm: qemu guest-deps hostvm
	@CHECK_STAGES=hostvm tests/check.sh
check-libvirt: qemu guest-deps libvirt-build $(UPSTREAM_QEMU)
	@CHECK_STAGES="libvirt-series libvirt" tests/check.sh
check-setup: deps
	@CHECK_STAGES=setup tests/check.sh

# randomized configurations: FUZZ_COUNT (1000), FUZZ_SEED
fuzz: qemu
	@$(PYTHON) -m tests.fuzz.spm_fuzz --count $(or $(FUZZ_COUNT),1000) \
	    $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))

# ASan + UBSan build; spm-memory-test and a fuzz slice on it
sanitize: $(TREE) $(ASAN)/build.ninja $(SEABIOS_BIN)
	@tests/sanitize.sh

# the device broken on purpose, each way of tests/breakages/list in turn:
# every one must fail the qtests or fuzz stage (BREAK_STAGES)
breakages: qtests
	@tests/breakages/run.sh

# QEMU's manual with the series' page, by Sphinx, warnings as errors
docs: $(TREE) $(DOCS)/build.ninja
	@ninja -C $(DOCS) sphinxdocs

# the QEMU series as it would be mailed: build/series, checkpatch on each
series: $(TREE)
	@setup/series.sh

# ... and build qemu-system-x86_64 and run spm-memory-test at every patch
series-build: $(TREE) $(SEABIOS_BIN)
	@setup/series.sh --build-each

# benchmark against pc-dimm and RAM: measure into $(BENCH_OUT)/bench.json
# (BENCH_ARGS: options of bench/spm_bench.py, e.g. --quick), then the
# report from it: bench.md, bench.png and bench.svg beside it
BENCH_OUT ?= $(BUILD)/bench
bench: qemu guest-deps
	@$(PYTHON) -m bench.spm_bench --out $(BENCH_OUT) $(BENCH_ARGS); \
	    rc=$$?; [ $$rc -le 1 ] || exit $$rc; \
	    $(PYTHON) -m bench.report $(BENCH_OUT)/bench.json && exit $$rc

# the report again from the last run's bench.json (measures nothing)
bench-report:
	@$(PYTHON) -m bench.report $(BENCH_OUT)/bench.json

demo:
	@$(MAKE) --no-print-directory -j$(PREP_JOBS) qemu guest-deps
	@$(PYTHON) -m demo.guest

demo-host: qemu guest-deps hostvm
	@$(PYTHON) -m demo.host

# --- the series --------------------------------------------------------------

# Write the working trees' commits (base..HEAD) back to patches/qemu and,
# if there is a libvirt tree, patches/libvirt.
export:
	@PREP=$(PREP) setup/export-series.sh qemu $(PATCHES)
	@if [ -d $(BUILD)/libvirt/.git ]; then setup/export-series.sh libvirt $(LVPATCHES); fi

clean:
	rm -rf $(QB) $(ASAN) $(BUILD)/libvirt-build $(BUILD)/logs

# Also removes the working tree: run "make export" first.
distclean:
	rm -rf $(BUILD)
