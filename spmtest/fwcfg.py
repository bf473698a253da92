"""What firmware reads from QEMU, read the same way: guest memory and
fw_cfg files over DMA through a qtest connection (QEMU -accel qtest
-qtest ...; the client is QEMU's own, spmtest.qemupy.QEMUQtestProtocol),
and decoders for etc/e820 and the ACPI tables in etc/acpi/tables (the
SRAT).

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


def _ok(qtest, line):
    """Send one qtest command on `qtest` (a connected
    spmtest.qemupy.QEMUQtestProtocol); return the words of its OK line."""
    reply = qtest.cmd(line)
    if not reply:
        raise EOFError("qtest connection closed")
    if not reply.startswith("OK"):
        raise RuntimeError(f"qtest: {line.split()[0]}: {reply.strip()}")
    return reply.split()


def read_memory(qtest, addr, length):
    """`length` bytes of guest memory at `addr`."""
    if length == 0:
        return b""
    return bytes.fromhex(_ok(qtest, f"read {addr:#x} {length}")[1][2:])


def write_memory(qtest, addr, data):
    if data:
        _ok(qtest, f"write {addr:#x} {len(data)} 0x{data.hex()}")


# guest RAM that a fw_cfg DMA transfer uses (the guest runs no code)
_DESC, _BUF = 0x100000, 0x200000


def fw_cfg_dma_setup(qtest, key, length):
    """Put a fw_cfg DMA descriptor (big endian: control SELECT key | READ,
    length, address) into guest memory."""
    control = (key << 16) | 0x08 | 0x02
    write_memory(qtest, _DESC, struct.pack(">IIQ", control, length, _BUF))


def fw_cfg_dma_go(qtest):
    """Start the transfer: the descriptor's address, big endian, to the DMA
    port's low half."""
    addr = int.from_bytes(struct.pack(">I", _DESC), "little")
    _ok(qtest, f"outl {FW_CFG_DMA_PORT:#x} {addr:#x}")


def fw_cfg_read(qtest, key, length):
    """`length` bytes of fw_cfg item `key`, by DMA."""
    if length == 0:
        return b""
    fw_cfg_dma_setup(qtest, key, length)
    fw_cfg_dma_go(qtest)
    # fw_cfg.rst: the device clears the control field when the transfer
    # is done, or leaves the ERROR bit (0x01) set; QEMU transfers before
    # the port write returns
    control = struct.unpack(">I", read_memory(qtest, _DESC, 4))[0]
    if control & 0x01:
        raise RuntimeError(f"fw_cfg DMA of key {key:#x}: error")
    if control:
        raise RuntimeError(f"fw_cfg DMA of key {key:#x}: not done (control {control:#x})")
    return read_memory(qtest, _BUF, length)


def fw_cfg_files(qtest):
    """The fw_cfg file directory: {name: (key, size)}."""
    n = struct.unpack(">I", fw_cfg_read(qtest, FW_CFG_FILE_DIR, 4))[0]
    d = fw_cfg_read(qtest, FW_CFG_FILE_DIR, 4 + 64 * n)
    files = {}
    for i in range(n):
        size, key = struct.unpack(">IH", d[4 + 64 * i:10 + 64 * i])
        name = d[12 + 64 * i:68 + 64 * i].split(b"\0")[0].decode()
        files[name] = (key, size)
    return files


def fw_cfg_file(qtest, name):
    """The contents of fw_cfg file `name`, or None."""
    f = fw_cfg_files(qtest).get(name)
    return None if f is None else fw_cfg_read(qtest, *f)


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
