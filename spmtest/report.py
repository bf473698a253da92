"""Turn the spm-memory guest report (guest/init.sh) in a console log
into JSON.

    python3 -m spmtest.report LOG [-o OUT.json]   print (or write) the JSON
    import: parse_report(text) -> dict    raises ReportError

Strict: the log must hold exactly one "=== SPM-REPORT BEGIN ===" line followed
by exactly one "=== SPM-REPORT END ===" line, every line between them must be a
known "key: value" line in the expected format, and kernel, iomem and node
lines must be present. Any violation is an error (exit status 1).

JSON (all addresses and sizes are ints; "end" is inclusive, as Linux prints):
{
  "kernel": "6.12.117+deb12-amd64",
  "cmdline": "console=ttyS0 panic=-1",
  "modules": [{"name": "kmem", "status": "ok", "error": null}, ...],
  "auto_online_blocks": "online",
  "block_size": 134217728,                # memory block size (None: none)
  "wait": {"ms": 0, "dax": 1, "soft_reserved": 1},
                                          # soft_reserved: E820 ranges in dmesg
  "iomem": [{"start": 0, "end": 4095, "name": "Reserved", "depth": 0,
             "parent": null}, ...],       # parent: index of enclosing range
  "dmesg": ["[    0.000000] BIOS-e820: [mem ...] usable", ...],
  "e820": [{"start": ..., "end": ..., "type": "soft reserved"}, ...],
                                          # from the BIOS-e820 lines
  "srat": [{"node": 1, "pxm": 1, "start": ..., "end": ..., "hotplug": false,
            "non_volatile": false}, ...],
  "dax": [{"name": "dax0.0", "start": ..., "size": ..., "target_node": 1,
           "driver": "kmem"}, ...],       # driver: device_dax, kmem or none
  "nodes": [{"id": 0, "memtotal_kb": 514356}, ...],
  "tiers": [{"name": "memory_tier2", "id": 2, "nodes": [1]},
            {"name": "memory_tier4", "id": 4, "nodes": [0]}, ...],
                                          # /sys/devices/virtual/memory_tiering
                                          # in report order (ascending id);
                                          # nodes: the tier's nodelist expanded
                                          # ("1-3,5" -> [1, 2, 3, 5]), None if
                                          # unreadable; [] when the guest has
                                          # no memory tiers
  "nodestates": {"has_cpu": [0], "has_memory": [0, 1, 2],
                 "online": [0, 1, 2], "possible": [0, 1, 2], ...},
                                          # /sys/devices/system/node/<name>;
                                          # {} in reports without these lines
}

Reports of older guests (no "tier:" and "nodestate:" lines) still parse;
their "tiers" is [] and "nodestates" is {}.
"""
import argparse
import json
import re
import sys

BEGIN = "=== SPM-REPORT BEGIN ==="
END = "=== SPM-REPORT END ==="


class ReportError(Exception):
    pass


IOMEM_RE = re.compile(r"^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$")
# 6.x: "BIOS-e820: [mem 0x...-0x...] soft reserved"; 7.x pads the type
# ("]  soft reserved", "]  System RAM") and adds "[gap ...]" lines
E820_RE = re.compile(
    r"BIOS-e820: \[mem (0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)\]\s+(.+?)\s*$")
SRAT_RE = re.compile(
    r"SRAT: Node (\d+) PXM (\d+) \[mem (0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)\]"
    r"((?: [a-z-]+)*)\s*$")
KV_RE = re.compile(r"(\w+)=(\S*)")
# "tier: name=memory_tier4 nodes=0", "nodestate: name=has_cpu nodes=0-1"
TIER_RE = re.compile(r"name=(memory_tier(\d+)) nodes=(\S*)")
NODESTATE_RE = re.compile(r"name=([a-z_]+) nodes=(\S*)")
# a Linux node list ("%*pbl"): "0", "1-3,5", or empty
NODELIST_RE = re.compile(r"(?:\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)?")


def node_list(text):
    """Expand a Linux node list ("1-3,5", "0", "") into [1, 2, 3, 5].
    Raises ValueError for anything else, or a range that ends before it
    starts, or nodes out of order."""
    if not NODELIST_RE.fullmatch(text):
        raise ValueError(f"not a node list: {text!r}")
    nodes = []
    for part in text.split(",") if text else []:
        lo, _, hi = part.partition("-")
        lo, hi = int(lo), int(hi or lo)
        if hi < lo or (nodes and lo <= nodes[-1]):
            raise ValueError(f"not a node list: {text!r}")
        nodes.extend(range(lo, hi + 1))
    return nodes


def _kv(value, required, lineno, key):
    """Parse 'a=1 b=2' into a dict; all of required must be there."""
    fields = dict(KV_RE.findall(value))
    missing = [k for k in required if k not in fields]
    if missing:
        raise ReportError(f"line {lineno}: {key} line lacks {', '.join(missing)}: {value!r}")
    return fields


def _int(text, lineno, what, base=10):
    try:
        return int(text, base)
    except ValueError:
        raise ReportError(f"line {lineno}: bad {what}: {text!r}") from None


def _nodes(text, lineno, key):
    try:
        return node_list(text)
    except ValueError as e:
        raise ReportError(f"line {lineno}: {key} line: {e}") from None


def _extract(text):
    lines = [l.rstrip("\r\n").rstrip("\r") for l in text.splitlines()]
    begins = [i for i, l in enumerate(lines) if l.strip() == BEGIN]
    ends = [i for i, l in enumerate(lines) if l.strip() == END]
    if not begins:
        raise ReportError(f"no '{BEGIN}' line")
    if not ends:
        raise ReportError(f"no '{END}' line")
    if len(begins) > 1 or len(ends) > 1:
        raise ReportError(f"{len(begins)} BEGIN and {len(ends)} END markers; expected one each")
    b, e = begins[0], ends[0]
    if e < b:
        raise ReportError("END marker comes before BEGIN marker")
    return [(i + 1, lines[i]) for i in range(b + 1, e)]


def parse_report(text):
    rep = {"kernel": None, "cmdline": None, "modules": [],
           "auto_online_blocks": None, "block_size": None, "wait": None,
           "iomem": [],
           "dmesg": [], "e820": [], "srat": [], "dax": [], "nodes": [],
           "tiers": [], "nodestates": {}}
    stack = []  # indexes of the open iomem ranges, one per depth
    for lineno, line in _extract(text):
        key, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):  # "key:" with an empty value
                key, value = line[:-1], ""
            else:
                raise ReportError(f"line {lineno}: not a 'key: value' line: {line!r}")
        if key == "kernel":
            rep["kernel"] = value.strip()
        elif key == "cmdline":
            rep["cmdline"] = value
        elif key == "module":
            f = _kv(value, ["name", "status"], lineno, key)
            err = value.split("error=", 1)[1] if "error=" in value else None
            rep["modules"].append({"name": f["name"], "status": f["status"], "error": err})
        elif key == "auto_online_blocks":
            rep["auto_online_blocks"] = value.strip()
        elif key == "block_size":
            # block_size_bytes: hex without "0x"
            if value.strip() != "none":
                rep["block_size"] = _int(value.strip(), lineno, "block size", 16)
        elif key == "wait":
            f = _kv(value, ["ms", "dax", "soft_reserved"], lineno, key)
            rep["wait"] = {k: _int(f[k], lineno, k) for k in ("ms", "dax", "soft_reserved")}
        elif key == "iomem":
            m = IOMEM_RE.match(value)
            if not m:
                raise ReportError(f"line {lineno}: bad iomem line: {value!r}")
            indent, start, end, name = m.groups()
            if len(indent) % 2:
                raise ReportError(f"line {lineno}: odd iomem indentation: {value!r}")
            depth = len(indent) // 2
            if depth > len(stack):
                raise ReportError(f"line {lineno}: iomem nesting jumps to depth {depth}")
            del stack[depth:]
            entry = {"start": int(start, 16), "end": int(end, 16), "name": name,
                     "depth": depth, "parent": stack[-1] if stack else None}
            if entry["end"] < entry["start"]:
                raise ReportError(f"line {lineno}: iomem range ends before it starts")
            stack.append(len(rep["iomem"]))
            rep["iomem"].append(entry)
        elif key == "dmesg":
            rep["dmesg"].append(value)
            m = E820_RE.search(value)
            if m:
                rep["e820"].append({"start": int(m.group(1), 16),
                                    "end": int(m.group(2), 16), "type": m.group(3)})
            m = SRAT_RE.search(value)
            if m:
                flags = m.group(5).split()
                rep["srat"].append({"node": int(m.group(1)), "pxm": int(m.group(2)),
                                    "start": int(m.group(3), 16),
                                    "end": int(m.group(4), 16),
                                    "hotplug": "hotplug" in flags,
                                    "non_volatile": "non-volatile" in flags})
        elif key == "dax":
            f = _kv(value, ["name", "start", "size", "target_node", "driver"], lineno, key)
            rep["dax"].append({
                "name": f["name"],
                "start": None if f["start"] == "unknown" else _int(f["start"], lineno, "dax start", 0),
                "size": None if f["size"] == "unknown" else _int(f["size"], lineno, "dax size"),
                "target_node": None if f["target_node"] == "unknown"
                else _int(f["target_node"], lineno, "target_node"),
                "driver": f["driver"]})
        elif key == "node":
            f = _kv(value, ["id", "memtotal_kb"], lineno, key)
            rep["nodes"].append({"id": _int(f["id"], lineno, "node id"),
                                 "memtotal_kb": _int(f["memtotal_kb"], lineno, "memtotal_kb")})
        elif key == "tier":
            m = TIER_RE.fullmatch(value)
            if not m:
                raise ReportError(f"line {lineno}: bad tier line: {value!r}")
            name, tid, nodes = m.groups()
            if any(t["name"] == name for t in rep["tiers"]):
                raise ReportError(f"line {lineno}: memory tier {name} twice")
            rep["tiers"].append({"name": name, "id": int(tid),
                                 "nodes": None if nodes == "unknown"
                                 else _nodes(nodes, lineno, key)})
        elif key == "nodestate":
            m = NODESTATE_RE.fullmatch(value)
            if not m:
                raise ReportError(f"line {lineno}: bad nodestate line: {value!r}")
            name, nodes = m.groups()
            if name in rep["nodestates"]:
                raise ReportError(f"line {lineno}: node state {name} twice")
            rep["nodestates"][name] = _nodes(nodes, lineno, key)
        else:
            raise ReportError(f"line {lineno}: unknown report key {key!r}: {line!r}")
    for key in ("kernel", "cmdline"):
        if rep[key] is None:
            raise ReportError(f"report has no '{key}:' line")
    if not rep["iomem"]:
        raise ReportError("report has no 'iomem:' lines")
    if not rep["nodes"]:
        raise ReportError("report has no 'node:' lines")
    return rep


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("-o", "--output", help="write the JSON here instead of stdout")
    args = ap.parse_args()
    try:
        with open(args.log, encoding="utf-8", errors="replace") as f:
            rep = parse_report(f.read())
    except (OSError, ReportError) as e:
        print(f"spmtest.report: {args.log}: {e}", file=sys.stderr)
        return 1
    out = json.dumps(rep, indent=1)
    if args.output:
        with open(args.output, "w") as f:
            f.write(out + "\n")
    else:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
