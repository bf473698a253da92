"""What firmware reads from QEMU, read the same way: the qtest protocol
(QEMU -accel qtest -qtest ...), fw_cfg files over DMA, and decoders for
etc/e820 and the ACPI tables in etc/acpi/tables (the SRAT).

The decoders follow the specifications (E820 entries as QEMU's fw_cfg
interface documents them; ACPI 6.5 section 5.2.16 for the SRAT), not the
code that builds the tables.
"""
import struct

E820_RAM, E820_RESERVED, E820_SOFT_RESERVED = 1, 2, 0xefffffff
# SRAT memory affinity flags (ENABLED is bit 0 in every kind of entry)
SRAT_ENABLED, SRAT_HOTPLUGGABLE, SRAT_NON_VOLATILE = 1, 2, 4
SRAT_GENERIC_INITIATOR = 5  # the type of a generic initiator affinity entry
FW_CFG_FILE_DIR = 0x19
FW_CFG_DMA_PORT = 0x518


class Qtest:
    """The qtest text protocol on a connected socket, enough to read fw_cfg
    by DMA and to read and write guest memory."""

    DESC, BUF = 0x100000, 0x200000      # guest RAM used for the DMA transfer

    def __init__(self, conn):
        self.f = conn.makefile("rw")

    def cmd(self, line):
        """Send one command; return the words of its OK or FAIL line."""
        self.f.write(line + "\n")
        self.f.flush()
        while True:
            reply = self.f.readline()
            if not reply:
                raise EOFError("qtest connection closed")
            if reply.startswith(("OK", "FAIL")):
                return reply.split()

    def read(self, addr, length):
        """`length` bytes of guest memory at `addr`."""
        if length == 0:
            return b""
        return bytes.fromhex(self.cmd(f"read {addr:#x} {length}")[1][2:])

    def write(self, addr, data):
        if data:
            self.cmd(f"write {addr:#x} {len(data)} 0x{data.hex()}")

    def dma_setup(self, key, length):
        """Put a fw_cfg DMA descriptor (big endian: control, length,
        address) for SELECT key | READ into guest memory."""
        control = (key << 16) | 0x08 | 0x02
        self.write(self.DESC, struct.pack(">IIQ", control, length, self.BUF))

    def dma_go(self):
        """Start the transfer: the descriptor's address, big endian, to the
        DMA port's low half."""
        addr = int.from_bytes(struct.pack(">I", self.DESC), "little")
        self.cmd(f"outl {FW_CFG_DMA_PORT:#x} {addr:#x}")

    def fw_cfg_read(self, key, length):
        if length == 0:
            return b""
        self.dma_setup(key, length)
        self.dma_go()
        if self.read(self.DESC, 4)[3] & 0x01:         # control: ERROR bit
            raise RuntimeError("fw_cfg DMA error")
        return self.read(self.BUF, length)

    def fw_cfg_files(self):
        """The fw_cfg file directory: {name: (key, size)}."""
        n = struct.unpack(">I", self.fw_cfg_read(FW_CFG_FILE_DIR, 4))[0]
        d = self.fw_cfg_read(FW_CFG_FILE_DIR, 4 + 64 * n)
        files = {}
        for i in range(n):
            size, key = struct.unpack(">IH", d[4 + 64 * i:10 + 64 * i])
            name = d[12 + 64 * i:68 + 64 * i].split(b"\0")[0].decode()
            files[name] = (key, size)
        return files

    def fw_cfg_file(self, name):
        """The contents of fw_cfg file `name`, or None."""
        f = self.fw_cfg_files().get(name)
        return None if f is None else self.fw_cfg_read(*f)


def e820(raw):
    """etc/e820 (little endian u64 address, u64 length, u32 type per
    entry): [(address, length, type)]."""
    return [struct.unpack("<QQI", raw[i:i + 20])
            for i in range(0, len(raw) - len(raw) % 20, 20)]


def acpi_tables(blob):
    """The tables in etc/acpi/tables, which is padded: {signature: bytes}
    (the first of each signature), up to the first non-table bytes."""
    out, off = {}, 0
    while off + 36 <= len(blob):
        sig = blob[off:off + 4]
        length = struct.unpack("<I", blob[off + 4:off + 8])[0]
        if length < 36 or not sig.isalnum() or off + length > len(blob):
            break
        out.setdefault(sig.decode(), blob[off:off + length])
        off += length
    return out


def acpi_length(blob):
    """Bytes of ACPI tables at the start of etc/acpi/tables."""
    off = 0
    while off + 36 <= len(blob):
        length = struct.unpack("<I", blob[off + 4:off + 8])[0]
        if length < 36 or not blob[off:off + 4].isalnum():
            break
        off += length
    return off


def srat(blob):
    """The SRAT's affinity structures in table order, or None without an
    SRAT: (type, pxm, base, length, flags); base and length are None for
    processor entries (type 0: local APIC, 2: local x2APIC) and generic
    initiator entries (type 5), and memory entries are type 1."""
    table = acpi_tables(blob).get("SRAT")
    if table is None:
        return None
    out, i = [], 48                     # header (36) + reserved (12)
    while i + 2 <= len(table):
        typ, ln = table[i], table[i + 1]
        if ln == 0:
            break
        e = table[i:i + ln]
        if typ == 0:
            pxm = e[2] | int.from_bytes(e[9:12], "little") << 8
            out.append((0, pxm, None, None, struct.unpack("<I", e[4:8])[0]))
        elif typ == 2:
            pxm, = struct.unpack("<I", e[4:8])
            out.append((2, pxm, None, None, struct.unpack("<I", e[12:16])[0]))
        elif typ == 1:
            pxm, = struct.unpack("<I", e[2:6])
            base, length = struct.unpack("<QQ", e[8:24])
            out.append((1, pxm, base, length, struct.unpack("<I", e[28:32])[0]))
        elif typ == SRAT_GENERIC_INITIATOR:
            pxm, = struct.unpack("<I", e[4:8])
            out.append((typ, pxm, None, None, struct.unpack("<I", e[24:28])[0]))
        i += ln
    return out


def srat_memory(blob):
    """The SRAT's memory affinity entries in order: (base, length, pxm,
    flags); None without an SRAT."""
    s = srat(blob)
    return None if s is None else [(b, n, p, f) for t, p, b, n, f in s if t == 1]
