"""Randomized spm-memory configurations against the built QEMU, with a model.

    python3 -m tests.fuzz.spm_fuzz [--seed N] [--count N] [--time-limit SECONDS] [--qemu PATH]

Draws machine types (pc, q35, their 5.0 versions, microvm, none), ACPI on or
off, an HMAT (a quarter of them with -global spm-memory.x-gap-with-hmat=on), RAM (up to
3.5 GiB, or 61.5 to 65 GiB, where the end of boot memory sets the alignment:
the guest's memory block size), the CPUID hypervisor bit (cleared by
-cpu qemu64,-hypervisor in some big cases), maxmem and slots, 0 to 4 NUMA
nodes (rarely a second CPU on another node), generic initiators on q35 and
pc with NUMA nodes (one or two edu devices, each with an
acpi-generic-initiator on a node, mostly one without CPUs, rarely one that
does not exist; at most one node without CPUs gets them, because QEMU emits
them in the order of a walk over its objects, which the command line does
not set), pc-dimms (with and without addr) and up to four spm-memory devices
with backends of every kind (ram, memfd, file; share, prealloc; read-only,
rom and copy-on-write files), sizes, nodes (given, unset, out of range) and
addresses (none, valid, misaligned, overlapping, adjacent, out of range),
memdevs missing, unknown, of the wrong type or already in use. A few
"faulty" cases break many rules at once, so that the order of the rules
counts.

The generator knows what it drew, and a model of the device's rules (an
ordered list, SPM_RULES, written from the rules rather than from QEMU's
code: placement is a search over every aligned address) predicts each case:
QEMU must either refuse it with exit status 1 and the message of one rule
(the first rule that the first failing device breaks; the message names the
device, the property and the values; a generic initiator on a node that does
not exist is refused by QEMU when it builds the ACPI tables, after the
devices, or when the object is created for node 128 or above), or start with
every device where the model put it: query-memory-devices (id, address,
size, node, memdev of each spm-memory device; address and size of each
pc-dimm), etc/e820 (one soft-reserved entry exactly over each device, no
other) and the SRAT (an ENABLED entry exactly over each device at its node,
the rest of device memory HOTPLUGGABLE|ENABLED at the last node, in (node,
address) order; a zero-length ENABLED entry for each node without CPUs or
boot memory when a device exists; an ENABLED generic initiator entry for
each acpi-generic-initiator at its node, in any order; nodes first named in
the order the guest must number them: processor and generic initiator
entries, then memory entries). A crash, an abort, a hang (timeout), or any
difference between prediction and outcome is a failure; both and the command
line are printed. The summary counts the outcomes by rule and the rarer
draws (HMAT, generic initiators, big RAM by block size). The draw depends
only on the seed, so failures can be replayed.
"""
import argparse
import collections
import os
import random
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time

MiB, GiB = 1 << 20, 1 << 30
from spmtest import fwcfg, qemu_binary
from spmtest.qemupy import (ExecuteError, QEMUMonitorProtocol,
                            QEMUQtestProtocol, QMPError)
ALIGN = 128 * MiB          # spm-memory alignment below 64 GiB of boot memory
MAX_ALIGN = 2 * GiB        # ... and its largest value above (Linux's largest block)
DIMM_ALIGN = 2 * MiB       # a memory-backend-ram's alignment (QEMU_VMALLOC_ALIGN)
SOFT_RESERVED = fwcfg.E820_SOFT_RESERVED
SRAT_ENABLED = fwcfg.SRAT_ENABLED
SRAT_HOTPLUG = fwcfg.SRAT_ENABLED | fwcfg.SRAT_HOTPLUGGABLE
TIMEOUT = 30

PC_MACHINES = ("q35", "pc", "pc-q35-5.0", "pc-i440fx-5.0")
MACHINES = {"q35": 40, "pc": 40, "pc-q35-5.0": 5, "pc-i440fx-5.0": 5,
            "microvm": 7, "none": 3}
FAULTY_MACHINES = {"q35": 25, "pc": 25, "pc-q35-5.0": 20, "pc-i440fx-5.0": 20,
                   "microvm": 5, "none": 5}
# RAM of big cases in MiB: boot memory then ends (q35 +2 GiB, pc +1 GiB)
# below 64 GiB, or at a multiple of 2 GiB, 1 GiB, 512 MiB or 256 MiB
BIG_RAM = {62976: 10, 63488: 15, 64512: 15, 65536: 25, 66048: 15, 65792: 10,
           66560: 10}
MAX_NODES = 128            # QEMU's limit for the node of a generic initiator
KINDS = {"ram": 20, "memfd": 15, "file": 15, "ram-share": 12, "ram-prealloc": 10,
         "file-share": 12, "file-ro": 2, "file-rom": 2, "file-cow": 3}


def align_up(x, a):
    return (x + a - 1) // a * a


class Dev:
    """One -device as drawn: an spm-memory device or a pc-dimm."""

    def __init__(self, kind, id, memdev, node=None, addr=None):
        self.kind, self.id, self.memdev = kind, id, memdev
        self.node, self.addr = node, addr       # None: not given


class Case:
    """One drawn configuration: the command line and what it was drawn from."""

    def __init__(self, rng, tmpdir):
        self.args = ["-display", "none", "-nodefaults", "-S"]
        # a faulty case breaks many rules at once, so that their order counts
        f = self.faulty = rng.random() < 0.08
        self.machine = rng.choices(list(MACHINES), list(
            (FAULTY_MACHINES if f else MACHINES).values()))[0]
        self.pc = self.machine in PC_MACHINES
        self.drawn = []             # the rarer draws, counted in the summary
        big = self.pc and rng.random() < 0.15
        self.acpi = self.machine == "none" or rng.random() >= (0.25 if f else 0.03)
        ram = rng.choices(*zip(*BIG_RAM.items()))[0] if big else \
            rng.choices([512, 1024, 3072, 3584], [40, 40, 10, 10])[0]
        self.ram = ram * MiB
        # the CPUID hypervisor bit, which QEMU's CPU models set
        self.hypervisor = not (self.ram >= 62 * GiB and rng.random() < 0.3)
        if not self.hypervisor:
            self.args += ["-cpu", "qemu64,-hypervisor"]
        r = rng.random()
        if r < (0.15 if f else 0.06):
            self.maxmem = None
        elif r < (0.3 if f else 0.08):
            self.maxmem = self.ram
        else:
            self.maxmem = self.ram + rng.choice(
                [4096, 8192, 16384] if big else [512, 1024, 2048, 4096, 8192]) * MiB
        self.slots = 0
        if self.pc and self.maxmem and self.maxmem > self.ram and rng.random() < 0.4:
            self.slots = rng.choice([1, 2])
        self.nodes = 0 if self.machine == "none" else \
            rng.choices([0, 1, 2, 3, 4], [15, 15, 30, 25, 15])[0]
        # CPU i is on node cpu_nodes[i]; rarely a second CPU on another node
        self.cpu_nodes = [0]
        if self.pc and self.nodes >= 2 and rng.random() < (0.5 if f else 0.12):
            self.cpu_nodes = [0, rng.randrange(self.nodes)]
            self.args += ["-smp", "2"]
        self.hmat = self.pc and self.nodes >= 1 and rng.random() < 0.15
        self.gap_with_hmat = self.hmat and rng.random() < 0.25
        if self.gap_with_hmat:
            self.args += ["-global", "spm-memory.x-gap-with-hmat=on"]
            self.drawn.append("hmat=on with x-gap-with-hmat=on")
        elif self.hmat:
            self.drawn.append("hmat=on")

        mopts = self.machine
        if not self.acpi:
            mopts += ",acpi=off"
        if self.hmat:
            mopts += ",hmat=on"
        self.ram0 = self.nodes > 0 or big   # boot RAM from backend ram0
        if big and not self.nodes:
            mopts += ",memory-backend=ram0"
        mem = f"{ram}M"
        if self.maxmem:
            mem += f",maxmem={self.maxmem // MiB}M"
        if self.slots:
            mem += f",slots={self.slots}"
        self.args += ["-M", mopts, "-m", mem]
        if self.ram0:
            self.args += ["-object", f"memory-backend-ram,id=ram0,size={ram}M"
                          + (",reserve=off" if big else "")]
        for n in range(self.nodes):
            opts = f"node,nodeid={n}"
            if n == 0:
                opts += ",memdev=ram0"
            cpus = [str(i) for i, c in enumerate(self.cpu_nodes) if c == n]
            if len(self.cpu_nodes) > 1 and cpus:
                opts += ",cpus=" + (cpus[0] if len(cpus) == 1 else f"{cpus[0]}-{cpus[-1]}")
            if self.hmat:
                opts += f",initiator={n if n in self.cpu_nodes else 0}"
            self.args += ["-numa", opts]
        # generic initiators: acpi-generic-initiator objects on edu devices.
        # Their nodes are usually valid; at most one of them is invalid, and
        # at most one node without CPUs gets them (QEMU's order of them in
        # SRAT is its walk over objects, which the model cannot know)
        self.gi_nodes = []
        if self.machine in ("q35", "pc") and self.nodes and rng.random() < 0.2:
            free = None             # the node without CPUs that gets them
            for i in range(rng.choice([1, 2])):
                r = rng.random()
                valid = all(k < self.nodes for k in self.gi_nodes)
                if r < 0.06 and valid:
                    k = self.nodes + rng.randrange(2)           # no such node
                elif r < 0.075 and valid:
                    k = rng.choice([MAX_NODES, 200])            # beyond QEMU's limit
                else:               # mostly a node without CPUs
                    k = rng.randrange(self.nodes)
                    if r < 0.75 and free is None:
                        k = rng.choice([n for n in range(self.nodes)
                                        if n not in self.cpu_nodes] or [k])
                    if k not in self.cpu_nodes:
                        k = free = k if free is None else free
                self.gi_nodes.append(k)
                self.args += ["-device", f"edu,id=acc{i}", "-object",
                              f"acpi-generic-initiator,id=gi{i},pci-dev=acc{i},node={k}"]
            self.drawn.append(f"{len(self.gi_nodes)} generic initiator(s)" + (
                ", one on a node that does not exist"
                if any(k >= self.nodes for k in self.gi_nodes) else ""))

        lay = layout(self)
        align = lay["align"]
        if big:
            self.drawn.append(f"big RAM, block size {align // MiB} MiB: {lay['block']}")
        base = lay["base"] if lay["devmem"] else 1 << 32
        devend = base + (lay["devmem"] or 0)
        end = base + (self.maxmem or self.ram) - self.ram

        self.backends = {}          # id -> (size, read-only ROM)
        self.devs = []
        spm = []
        for i in range(rng.choices([0, 1, 2, 3, 4], [10, 30, 30, 18, 12])[0]):
            if big:
                size = rng.choices([2048, 4096, 1024, 3072, 512, 384],
                                   [35, 25, 15, 10, 10, 5])[0] * MiB
            else:
                size = rng.choices([128, 256, 512, 1024, 384, 100, 192],
                                   [25, 25, 20, 10, 10, 4, 4])[0] * MiB
            if f and rng.random() < 0.4:
                size = rng.choice([100, 192]) * MiB
            kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
            if f and rng.random() < 0.3:
                kind = rng.choice(["file-ro", "file-rom"])
            if kind == "ram-prealloc" and (size > 256 * MiB or big):
                kind = "ram"
            memdev = f"hbm{i}"
            obj = {"ram": "memory-backend-ram", "memfd": "memory-backend-memfd",
                   "file": "memory-backend-file"}[kind.split("-")[0]]
            opts = f"{obj},id={memdev},size={size // MiB}M"
            if kind.startswith("file"):
                opts += f",mem-path={tmpdir}/{memdev}"
            if kind.endswith("share"):
                opts += ",share=on"
            if kind.endswith("prealloc"):
                opts += ",prealloc=on"
            if kind in ("file-ro", "file-rom", "file-cow"):
                opts += ",readonly=on" + {"file-ro": "", "file-rom": ",rom=on",
                                          "file-cow": ",rom=off"}[kind]
            used = [d.memdev for d in self.devs if d.memdev in self.backends]
            if self.ram0:
                used.append("ram0")
            r = rng.random() * (0.25 if f else 1)
            if r < 0.025:
                memdev = "nope"                 # not found
            elif r < 0.055 and used:
                memdev = rng.choice(used)       # already in use
            elif r < 0.07:
                memdev = None                   # missing
            elif r < 0.08 and self.devs:
                memdev = rng.choice(self.devs).id   # not a memory backend
            else:
                if kind in ("file-ro", "file-rom", "file-cow"):
                    with open(os.path.join(tmpdir, memdev), "wb") as fh:
                        fh.truncate(size)
                self.args += ["-object", opts]
                # rom defaults to readonly's value; rom=off maps the file
                # privately (copy on write): writable memory
                self.backends[memdev] = (size, kind in ("file-ro", "file-rom"))
            size = self.backends[memdev][0] if memdev in self.backends else size
            r = rng.random() * (0.1 if f else 1)
            if r < 0.03:
                node = None
            elif r < 0.06:
                node = max(self.nodes, 1)       # no such node
            else:
                node = rng.randrange(max(self.nodes, 1))
            r = rng.random()
            prev = [(a, s) for a, s in spm if a]
            if self.hmat and prev and r < 0.3:
                r = 0.85                        # adjacent, allowed with an HMAT
            elif f and r < 0.4:
                r = rng.choice([0.7, 0.95])     # misaligned, or outside
            if r < 0.5:
                addr = None
            elif r < 0.68:
                addr = base + rng.randrange(0, max((devend - base) // align, 1)) * align
            elif r < 0.72:
                addr = base + rng.randrange(1, 1 << 12) * 4096 * 7
            elif r < 0.80 and prev:
                addr = prev[-1][0] + rng.choice([0, align])            # overlap
            elif r < 0.90 and prev:
                a, s = rng.choice(prev)                                 # adjacent
                addr = rng.choice([a + s, a - size])
            elif r < 0.90:
                addr = None
            else:
                addr = rng.choice([0x80000000, end, devend, devend - align,
                                   1 << 46, 0])        # outside, or 0: placed
            dev = Dev("spm", f"spm{i}", memdev, node, addr)
            self.devs.append(dev)
            spm.append((addr, size))
        for i in range(rng.randint(0, self.slots)):
            size = rng.choice([256, 256, 128, 64]) * MiB
            self.backends[f"dimmmem{i}"] = (size, False)
            self.args += ["-object", f"memory-backend-ram,id=dimmmem{i},size={size // MiB}M"]
            r = rng.random()
            addr = None
            if r < 0.1:
                addr = base + rng.randrange(0, (devend - base) // DIMM_ALIGN) * DIMM_ALIGN
            elif r < 0.13:
                addr = rng.choice([base + 0x1000, devend])
            self.devs.insert(rng.randrange(len(self.devs) + 1),
                             Dev("dimm", f"dimm{i}", f"dimmmem{i}", addr=addr))
        for d in self.devs:
            opts = "spm-memory" if d.kind == "spm" else "pc-dimm"
            opts += f",id={d.id}"
            if d.memdev:
                opts += f",memdev={d.memdev}"
            if d.node is not None:
                opts += f",node={d.node}"
            if d.addr is not None:
                opts += f",addr={d.addr:#x}"
            self.args += ["-device", opts]

    def cmdline(self, qemu):
        return " ".join(shlex.quote(a) for a in [qemu] + self.args)


# ---------------------------------------------------------------- the model

def layout(case):
    """The machine as the rules describe it, before any device."""
    nodes = case.nodes
    if case.pc and not nodes:
        # current pc and q35 add a node when there is device memory or
        # slots; the 5.0 machine types only for slots
        old = case.machine.endswith("-5.0")
        if case.slots or (not old and case.maxmem and case.maxmem > case.ram):
            nodes = 1
    below, above = case.ram, 0
    if case.machine in ("q35", "pc-q35-5.0"):
        lowmem = 0x80000000 if case.ram >= 0xb0000000 else 0xb0000000
    else:
        lowmem = 0xc0000000 if case.ram >= 0xe0000000 else 0xe0000000
    if case.pc and case.ram >= lowmem:
        below, above = lowmem, case.ram - lowmem
    boot_end = (1 << 32) + above if above else below
    devmem = None
    if case.pc and case.maxmem and case.maxmem > case.ram:
        devmem = case.maxmem - case.ram + case.slots * GiB
    # the guest's memory block size (Linux's probe_memory_block_size())
    align = MAX_ALIGN
    if boot_end < 64 * GiB:
        align, block = ALIGN, "boot memory ends below 64 GiB"
    elif not case.hypervisor:
        block = "no hypervisor bit"
    else:
        while boot_end % align and align > ALIGN:
            align //= 2
        block = "the largest that divides the end of boot memory"
    return {
        "nodes": nodes,
        "base": align_up((1 << 32) + above, GiB),
        "devmem": devmem,
        "align": align,
        "block": block,
    }


def initiators(case, nodes):
    """The nodes of the SRAT's processor entries (in CPU order), then those of
    its generic initiator entries (QEMU's order, which the draw makes
    irrelevant: the nodes without CPUs among them are one at most), with
    repeats; generic initiators on nodes that do not exist are left out."""
    return case.cpu_nodes + [k for k in case.gi_nodes if k < nodes]


def guest_order(case, nodes):
    """Node ids in the order a guest numbers them: its first pass over SRAT
    names the nodes with CPUs, in CPU order, then those with generic
    initiators; then the others in ascending order."""
    order = []
    for n in initiators(case, nodes) + list(range(nodes)):
        if n < nodes and n not in order:
            order.append(n)
    return order


class Prediction:
    def __init__(self, rule=None, msg=None, placed=None, lay=None):
        self.rule, self.msg = rule, msg     # a refusal: rule name, message
        self.placed = placed                # a start: [(dev, addr, size)]
        self.lay = lay

    def __str__(self):
        if self.rule:
            return f"refusal by rule {self.rule}: {self.msg}"
        return "start with " + (", ".join(
            f"{d.id} at {a:#x} size {s:#x}" + (f" node {d.node}" if d.kind == "spm" else "")
            for d, a, s in self.placed) or "no memory device")


def overlaps(a, s, b, t):
    return a < b + t and b < a + s


class State:
    """The machine while the devices are added in command-line order."""

    def __init__(self, case):
        self.case = case
        self.lay = layout(case)
        self.nodes = self.lay["nodes"]
        self.base, self.devmem = self.lay["base"], self.lay["devmem"]
        self.align = self.lay["align"]
        self.devend = self.base + (self.devmem or 0)
        self.total = (case.maxmem or case.ram) - case.ram     # maxmem - ram
        self.mapped = {"ram0"} if case.ram0 else set()      # backends in use
        self.placed = []                                    # (dev, addr, size)
        self.order = guest_order(case, self.nodes)

    def used(self):
        return sum(s for _, _, s in self.placed)

    def free_addr(self, size, step, gap):
        """The lowest multiple of `step` in device memory where `size` bytes
        overlap no memory device and keep gap(device) bytes away from each."""
        for a in range(align_up(self.base, step), self.devend - size + 1, step):
            if not any(a < b + t + gap(o) and b < a + size + gap(o)
                       for o, b, t in self.placed):
                return a
        return None

    def auto_addr(self, size):
        """Where automatic placement puts `size` bytes: the lowest aligned
        free address; without an HMAT (or with x-gap-with-hmat=on) it also
        keeps a block free to every spm-memory device."""
        gap = self.align if not self.case.hmat or self.case.gap_with_hmat else 0
        return self.free_addr(size, self.align,
                              lambda o: gap if o.kind == "spm" else 0)


# The rules of spm-memory on pc and q35, in the order QEMU checks them; each
# returns (rule, message) when device d with `size` bytes breaks it.
def r_acpi(st, d, size):
    if not st.case.acpi:
        return "acpi-off", "property 'node' needs an ACPI SRAT, and the machine has ACPI disabled"


def r_guest_node(st, d, size):
    if d.node is not None and d.node < st.nodes and st.order.index(d.node) != d.node:
        return "guest-node", (f"property 'node' value {d.node} would be NUMA "
                              f"node {st.order.index(d.node)} in the guest")


def r_memdev_unset(st, d, size):
    if d.memdev is None:
        return "memdev-unset", "property 'memdev' is not set"


def r_memdev_in_use(st, d, size):
    if d.memdev in st.mapped:
        return "memdev-in-use", f"property 'memdev' value '{d.memdev}' is already in use"


def r_memdev_read_only(st, d, size):
    if d.memdev in st.case.backends and st.case.backends[d.memdev][1]:
        return "memdev-read-only", f"property 'memdev' value '{d.memdev}' is read-only memory"


def r_device_memory(st, d, size):
    if st.devmem is None:
        return "no-device-memory", "the machine has no device memory"


def r_node_unset(st, d, size):
    if d.node is None:
        return "node-unset", "property 'node' is not set"


def r_no_numa(st, d, size):
    if st.nodes == 0:
        return "no-numa", f"property 'node' value {d.node} needs NUMA nodes, and the machine has none"


def r_node_range(st, d, size):
    if d.node >= st.nodes:
        return "node-range", (f"property 'node' value {d.node} is not a NUMA node "
                              f"of this machine, which has {st.nodes} node(s)")


def r_size_align(st, d, size):
    if size == 0 or size % st.align:
        return "size-align", (f"size {size:#x} of memdev '{d.memdev}' is not a "
                              f"multiple of {st.align:#x}")


def r_size_left(st, d, size):
    left = st.total - st.used()
    if size > left:
        return "size-exceeds", (f"size {size:#x} of memdev '{d.memdev}' exceeds "
                                f"the device memory left by maxmem: {left:#x} of "
                                f"{st.total:#x}")


def r_addr_align(st, d, size):
    if d.addr and d.addr % st.align:        # addr=0 is the default: placed
        return "addr-align", (f"property 'addr' value {d.addr:#x} is not aligned "
                              f"to {st.align:#x}")


def r_addr_outside(st, d, size):
    if d.addr and not (st.base <= d.addr and d.addr + size <= st.devend):
        return "addr-outside", (f"property 'addr' value {d.addr:#x} with size "
                                f"{size:#x} is outside device memory "
                                f"[{st.base:#x}, {st.devend:#x})")


def r_addr_conflict(st, d, size):
    """Overlapping a memory device, or touching an spm-memory device without
    an HMAT: the message names the lowest such device."""
    if not d.addr:
        return None
    for o, a, s in sorted(st.placed, key=lambda p: p[1]):
        if overlaps(d.addr, size, a, s):
            return "addr-overlap", (f"property 'addr' value {d.addr:#x} with size "
                                    f"{size:#x} overlaps memory device '{o.id}' "
                                    f"at [{a:#x}, {a + s - 1:#x}]")
        if o.kind == "spm" and not st.case.hmat and \
                (a + s == d.addr or d.addr + size == a):
            return "addr-adjacent", (f"property 'addr' value {d.addr:#x} places it "
                                     f"right next to spm-memory '{o.id}' at "
                                     f"[{a:#x}, {a + s - 1:#x}]")


def r_room(st, d, size):
    if not d.addr and st.auto_addr(size) is None:
        return "no-room", (f"no room for memdev '{d.memdev}' of size {size:#x} "
                           f"in device memory [{st.base:#x}, {st.devend:#x})")


SPM_RULES = [r_acpi, r_guest_node, r_memdev_unset, r_memdev_in_use,
             r_memdev_read_only, r_device_memory, r_node_unset, r_no_numa,
             r_node_range, r_size_align, r_size_left, r_addr_align,
             r_addr_outside, r_addr_conflict, r_room]


def add_dimm(st, d, size):
    """A pc-dimm: returns (rule, message) or places it."""
    if not st.case.acpi:
        return "dimm-acpi-off", "memory hotplug is not enabled: missing acpi device or acpi disabled"
    if st.used() + size > st.total:
        return "dimm-no-space", (f"not enough space, currently {st.used():#x} in "
                                 f"use of total space for memory devices {st.total:#x}")
    addr = d.addr
    if addr:                                # addr=0: placed by QEMU
        if addr % DIMM_ALIGN:
            return "dimm-addr-align", f"address must be aligned to {DIMM_ALIGN:#x} bytes"
        if not (st.base <= addr and addr + size <= st.devend):
            return "dimm-addr-outside", (f"can't add memory device [{addr:#x}:{size:#x}], "
                                         f"usable range for memory devices "
                                         f"[{st.base:#x}:{st.devmem:#x}]")
        hit = sorted((a, o.id) for o, a, s in st.placed if overlaps(addr, size, a, s))
        if hit:
            return "dimm-addr-overlap", f"address range conflicts with memory device id='{hit[0][1]}'"
    else:
        addr = st.free_addr(size, DIMM_ALIGN, lambda o: 0)
        if addr is None:
            return "dimm-no-room", ("could not find position in guest address space "
                                    "for memory device - memory fragmented due to alignments")
    st.placed.append((d, addr, size))
    st.mapped.add(d.memdev)
    return None


def predict(case, rules=SPM_RULES):
    """What QEMU must do with the case: each device in turn, its rules in order."""
    st = State(case)
    if any(k >= MAX_NODES for k in case.gi_nodes):
        # refused when the object is created, before any device
        return Prediction("gi-node-max", "acpi-generic-initiator: Invalid NUMA "
                          "node specified", lay=st.lay)
    for d in case.devs:
        size = case.ram if d.memdev == "ram0" else \
            case.backends[d.memdev][0] if d.memdev in case.backends else None
        if d.kind == "dimm":
            broken = add_dimm(st, d, size)
            if broken:
                return Prediction(*broken, lay=st.lay)
            continue
        pre = f"spm-memory '{d.id}': "
        # the link property, set before the device is realized
        if d.memdev is not None and size is None:
            if any(o.id == d.memdev for o in case.devs):
                return Prediction("memdev-wrong-type", "Invalid parameter type "
                                  "for 'memdev', expected: memory-backend", lay=st.lay)
            return Prediction("memdev-not-found", f"Device '{d.memdev}' not found",
                              lay=st.lay)
        if not case.pc:
            return Prediction("machine-unsupported", pre + f"machine type "
                              f"'{case.machine}' does not support spm-memory "
                              "devices", lay=st.lay)
        for rule in rules:
            broken = rule(st, d, size)
            if broken:
                return Prediction(broken[0], pre + broken[1], lay=st.lay)
        addr = d.addr or st.auto_addr(size)
        st.placed.append((d, addr, size))
        st.mapped.add(d.memdev)
    # QEMU checks the nodes of generic initiators when it builds the SRAT,
    # after the devices
    bad = [k for k in case.gi_nodes if k >= st.nodes]
    if bad and case.acpi:
        return Prediction("gi-node-invalid", f"acpi-generic-initiator: Specified "
                          f"node {bad[0]} is invalid.", lay=st.lay)
    return Prediction(placed=st.placed, lay=st.lay)


def expected_srat(case, pred):
    """Device memory entries (base, size, pxm, flags) in table order, the
    nodes with a zero-length entry, and the order in which the SRAT must
    first name the nodes."""
    lay = pred.lay
    nodes = lay["nodes"]
    spm = sorted((a, s, d.node) for d, a, s in pred.placed if d.kind == "spm")
    dev = []
    if lay["devmem"]:
        nxt, end = lay["base"], lay["base"] + lay["devmem"]
        for a, s, n in spm:
            if a > nxt:
                dev.append((nxt, a - nxt, nodes - 1, SRAT_HOTPLUG))
            dev.append((a, s, n, SRAT_ENABLED))
            nxt = a + s
        if end > nxt:
            dev.append((nxt, end - nxt, nodes - 1, SRAT_HOTPLUG))
        dev.sort(key=lambda e: (e[2], e[0]))
    zero = [n for n in range(1, nodes) if spm and n not in case.cpu_nodes]
    named = []
    for n in initiators(case, nodes) + [0] + zero + [e[2] for e in dev]:
        if n not in named:
            named.append(n)
    return dev, zero, named


# ------------------------------------------------------------------ running

def check_started(case, pred, qmp_devs, e820, srat):
    """A started case against the prediction. Returns a problem or None."""
    want = {d.id: (d, a, s) for d, a, s in pred.placed}
    got = {}
    for m in qmp_devs:
        data = m["data"]
        if m["type"] == "spm-memory":
            got[data["id"]] = ("spm", data["memaddr"], data["size"], data["node"],
                               data["memdev"])
        elif m["type"] == "dimm":
            got[data["id"]] = ("dimm", data["addr"], data["size"], None, data["memdev"])
        else:
            got[data.get("id")] = (m["type"],)
    exp = {i: (d.kind, a, s, d.node if d.kind == "spm" else None,
               f"/objects/{d.memdev}") for i, (d, a, s) in want.items()}
    if got != exp:
        return (f"query-memory-devices {sorted(got.items())} != predicted "
                f"{sorted(exp.items())}")
    if not case.pc:
        return None
    spm = sorted((a, s) for d, a, s in pred.placed if d.kind == "spm")
    soft = sorted((a, ln) for a, ln, t in e820 if t == SOFT_RESERVED)
    if soft != spm:
        return f"E820 soft reserved {soft} != predicted {spm}"
    nodes = pred.lay["nodes"]
    if not case.acpi or not nodes:
        return None if srat is None else "an SRAT without ACPI or NUMA nodes"
    if srat is None:
        return "no SRAT"
    dev, zero, named = expected_srat(case, pred)
    mem = [(b, s, p, f) for t, p, b, s, f in srat if t == 1]
    got_dev = [e for e in mem if e[1] and e[0] >= pred.lay["base"]] \
        if pred.lay["devmem"] else []
    if got_dev != dev:
        return f"SRAT device memory {fmt_srat(got_dev)} != predicted {fmt_srat(dev)}"
    got_zero = [p for b, s, p, f in mem if not s and f == SRAT_ENABLED]
    if got_zero != zero:
        return f"SRAT zero-length entries at nodes {got_zero} != predicted {zero}"
    gis = sorted((p, f) for t, p, b, s, f in srat if t == fwcfg.SRAT_GENERIC_INITIATOR)
    want_gis = sorted((k, SRAT_ENABLED) for k in case.gi_nodes)
    if gis != want_gis:
        return f"SRAT generic initiators (node, flags) {gis} != predicted {want_gis}"
    # nodes in the order Linux first meets them: a pass over the processor
    # and generic initiator entries, then one over the memory entries
    got_named = []
    for first in (True, False):
        for t, p, b, s, f in srat:
            if (t != 1) == first and f & SRAT_ENABLED and p not in got_named:
                got_named.append(p)
    if got_named != named:
        return f"SRAT names the nodes in order {got_named}, predicted {named}"
    return None


def fmt_srat(entries):
    return "[" + ", ".join(f"({b:#x}, {s:#x}, node {p}, flags {f})"
                           for b, s, p, f in entries) + "]"


def run_case(qemu, case, tmpdir):
    """Run QEMU on the case. Returns ("exited", status, stderr), ("hang",),
    ("error", text) or ("started", qmp devices, e820, srat, stderr).

    QEMU's own clients (spmtest.qemupy) listen on both sockets and QEMU
    connects to them: its QMP chardev while it parses its options, its
    qtest chardev after that; QMP greets only once the machine is built
    and the main loop runs. QEMU's machine launcher (QEMUQtestMachine) is
    not used: it would wait without a limit for that greeting (a hang while
    building the machine would stop the fuzzer) and gives no separate
    stderr."""
    qmp_path = os.path.join(tmpdir, "qmp.sock")
    qt_path = os.path.join(tmpdir, "qtest.sock")
    for p in (qmp_path, qt_path):
        if os.path.exists(p):
            os.unlink(p)
    qmp = QEMUMonitorProtocol(qmp_path, server=True)
    qmp.settimeout(TIMEOUT)
    qt = QEMUQtestProtocol(qt_path, server=True)
    qt.settimeout(0.05)
    argv = [qemu, *case.args, "-accel", "qtest", "-qtest", f"unix:{qt_path}",
            "-qtest-log", "/dev/null", "-qmp", f"unix:{qmp_path}"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def exited():
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return ("hang",)
        return ("exited", proc.returncode, err.decode(errors="replace"))

    try:
        # QEMU refuses many cases before it connects: watch it meanwhile
        deadline = time.time() + TIMEOUT
        while True:
            try:
                qt.accept()
                break
            except socket.timeout:
                if proc.poll() is not None:
                    return exited()
                if time.time() > deadline:
                    return ("hang",)
        qt.settimeout(TIMEOUT)
        try:
            qmp.accept(TIMEOUT)
            devs = qmp.cmd("query-memory-devices")
        except ExecuteError:
            raise
        except (QMPError, OSError, EOFError):
            # QEMU connected before building the machine: it may still
            # refuse the case (or hang: the accept's timeout)
            return exited()
        e820, srat = [], None
        if case.pc:
            e820 = fwcfg.e820(fwcfg.fw_cfg_file(qt, "etc/e820") or b"")
            tables = fwcfg.fw_cfg_file(qt, "etc/acpi/tables")
            srat = fwcfg.srat(tables) if tables else None
        qmp.cmd("quit")
        _, err = proc.communicate(timeout=TIMEOUT)
        return ("started", devs, e820, srat, err.decode(errors="replace"))
    except (OSError, EOFError, ValueError, RuntimeError, QMPError,
            subprocess.TimeoutExpired) as e:
        proc.kill()
        proc.wait()
        return ("error", f"{type(e).__name__}: {e}")
    finally:
        qt.close()
        try:
            qmp.close()
        except (QMPError, OSError, EOFError):
            pass            # EOFError: QEMU closed the connection on quit
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def error_line(err):
    """QEMU's error: its first line that is not a warning, without the
    program name and the option it is about (acpi-generic-initiator prints
    its errors without them)."""
    for line in err.splitlines():
        if line.startswith("qemu-system-x86_64: ") and ": warning: " not in line:
            return re.sub(r"^qemu-system-x86_64: (-device [^:]*: )?", "", line)
        if line.startswith("acpi-generic-initiator: "):
            return line
    return None


# a report of AddressSanitizer, LeakSanitizer or UBSan (sanitized builds)
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:")


def judge(case, pred, obs):
    """Returns (outcome, detail): started | rejected | FAIL."""
    if obs[0] in ("exited", "started") and SANITIZER_RE.search(obs[-1]):
        report = SANITIZER_RE.search(obs[-1])
        return "FAIL", (f"sanitizer report: "
                        f"{obs[-1][report.start():report.start() + 500]}")
    if obs[0] == "hang":
        return "FAIL", f"hang; predicted {pred}"
    if obs[0] == "error":
        return "FAIL", f"{obs[1]}; predicted {pred}"
    if obs[0] == "exited":
        _, status, err = obs
        msg = error_line(err)
        if pred.rule is None:
            return "FAIL", (f"predicted {pred}; QEMU exited with status "
                            f"{status}: {err.strip()[:500]}")
        if status != 1 or msg is None or not msg.endswith(pred.msg):
            return "FAIL", (f"predicted {pred}; QEMU exited with status "
                            f"{status}: {err.strip()[:500]}")
        return "rejected", pred.rule
    _, devs, e820, srat, _ = obs
    if pred.rule is not None:
        return "FAIL", f"predicted {pred}; QEMU started"
    problem = check_started(case, pred, devs, e820, srat)
    if problem:
        return "FAIL", f"{problem}; predicted {pred}"
    n = sum(d.kind == "spm" for d, _, _ in pred.placed)
    return "started", f"{n} spm-memory device(s)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--time-limit", type=float, default=1800)
    ap.add_argument("--qemu", default=qemu_binary())
    ap.add_argument("--verbose", action="store_true",
                    help="print every case's outcome and command line")
    ap.add_argument("--tap", metavar="FILE",
                    help="write each case's result to FILE as TAP")
    args = ap.parse_args()
    tap = open(args.tap, "w") if args.tap else None

    rng = random.Random(args.seed)
    outcomes = collections.Counter()
    reasons = collections.Counter()
    drawn = collections.Counter()
    failures = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmpdir:
        n = 0
        while n < args.count and time.time() - start < args.time_limit:
            case = Case(rng, tmpdir)
            pred = predict(case)
            drawn.update(case.drawn)
            outcome, detail = judge(case, pred, run_case(args.qemu, case, tmpdir))
            outcomes[outcome] += 1
            if tap:
                ok = "not ok" if outcome == "FAIL" else "ok"
                tap.write(f"{ok} {n + 1} - case {n} (seed {args.seed}): "
                          f"{outcome}: {detail}".replace("#", "no.").replace("\n", " ") + "\n")
                tap.flush()
            if args.verbose:
                print(f"case {n}: {outcome}: {detail}\n  "
                      f"{case.cmdline(args.qemu)}", flush=True)
            if outcome == "rejected":
                reasons[f"refused: {detail}"] += 1
            elif outcome == "started":
                reasons[f"started: {detail}"] += 1
            else:
                failures.append((n, detail, case.cmdline(args.qemu)))
                print(f"FAIL case {n}: {detail}\n  {case.cmdline(args.qemu)}",
                      flush=True)
            n += 1
            for f in os.listdir(tmpdir):
                if f.startswith("hbm"):
                    os.unlink(os.path.join(tmpdir, f))
    secs = time.time() - start
    print(f"spm-memory fuzz: seed {args.seed}, {n} cases in {secs:.0f}s: "
          f"{outcomes['started']} started and agreed, "
          f"{outcomes['rejected']} rejected with exit status 1, "
          f"{outcomes['FAIL']} failed")
    for msg, count in sorted(reasons.items(), key=lambda x: (-x[1], x[0])):
        print(f"  {count:5d}  {msg}")
    print("drawn:")
    for msg, count in sorted(drawn.items()):
        print(f"  {count:5d}  {msg}")
    if n < args.count:
        print(f"(stopped by the time limit after {n} of {args.count} cases)")
    if tap:
        for k in range(n, args.count):  # cut by the time limit: shown
            tap.write(f"ok {k + 1} - case {k} # SKIP time limit\n")
        tap.write(f"1..{args.count}\n")
        tap.close()
    print(f"fuzz: {outcomes['started'] + outcomes['rejected']} passed, "
          f"{outcomes['FAIL']} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
