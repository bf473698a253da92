"""Count the test results a runner wrote, from its machine-readable file:
JUnit XML (pytest --junitxml), TAP (tests/tap.sh for the shell stages) or
meson test's JSON log (QEMU's qtests: each test's TAP stream and result).

    python3 -m tests.results FILE...

prints "P passed, F failed, S skipped" for all FILEs together, then a
line per failed test ("FAIL name"), and exits 0; it exits 1 if a FILE
is missing or cannot be read (the stage then ran no test that counts).

JUnit: a testcase with <failure> or <error> failed, one with <skipped>
was skipped, any other passed; a <testsuite> error attribute larger than
its erroring testcases (pytest's collection errors) counts as failures.
meson JSON (one object per line): each test's stdout read as TAP, and a
test that meson did not call OK, SKIP or EXPECTEDFAIL (a crash, a timeout,
a non-zero exit) is a failure even if its TAP shows none: meson's own JUnit
file lists only the cases a killed test reported, as passed. A test
without TAP (libvirt's) that meson called OK or EXPECTEDFAIL counts as one
passed test.
TAP: "ok" / "not ok" lines ("ok ... # SKIP" skipped, "# TODO" not
counted, "not ok" failed whatever its directive); a
plan ("1..N") with fewer results than N counts the missing ones as
failed, and "Bail out!" is a failure.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET


def junit(path):
    passed, failed, skipped = 0, [], 0
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    for suite in suites:
        cases = list(suite.iter("testcase"))
        errs = 0
        for c in cases:
            name = f"{c.get('classname', '')} {c.get('name', '')}".strip()
            if c.find("failure") is not None or c.find("error") is not None:
                failed.append(name)
                errs += c.find("error") is not None
            elif c.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
        extra = int(suite.get("errors", 0) or 0) - errs
        if extra > 0:
            failed += [f"{suite.get('name', path)}: error outside a test"] * extra
    return passed, failed, skipped


_TAP = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*-?\s*([^#]*)(#\s*(\w+).*)?$")


def tap(path, text=None):
    passed, failed, skipped, plan, seen = 0, [], 0, None, 0
    if text is None:
        with open(path, errors="replace") as f:
            text = f.read()
    for line in text.splitlines():
        m = re.match(r"^1\.\.(\d+)", line)
        if m and plan is None:
            plan = int(m.group(1))
            continue
        if line.startswith("Bail out!"):
            failed.append(f"{path}: {line}")
            continue
        m = _TAP.match(line)
        if not m:
            continue
        seen += 1
        directive = (m.group(5) or "").upper()
        if directive == "TODO":
            continue
        if m.group(1) == "not ok":      # also "not ok ... # SKIP", as meson
            failed.append(m.group(3).strip() or f"{path} #{m.group(2)}")
        elif directive.startswith("SKIP"):
            skipped += 1
        else:
            passed += 1
    if plan is not None and seen < plan:
        failed += [f"{path}: {plan - seen} of {plan} planned tests did not report"]
    return passed, failed, skipped


def meson_json(path):
    passed, failed, skipped = 0, [], 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            p, fl, sk = tap(t["name"], t.get("stdout") or "")
            if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL") and not fl:
                fl = [f"{t['name']}: {t['result']}, exit status {t.get('returncode')}"]
            if t["result"] == "SKIP" and p + sk + len(fl) == 0:
                sk = 1
            # a test that writes no TAP (libvirt's) counts once, by meson's
            # verdict; an expected failure is what its suite expects
            if t["result"] in ("OK", "EXPECTEDFAIL") and p + sk + len(fl) == 0:
                p = 1
            passed, failed, skipped = passed + p, failed + fl, skipped + sk
    return passed, failed, skipped


def read(path):
    with open(path, "rb") as f:
        head = f.read(256).lstrip()
    if head.startswith(b"<"):
        return junit(path)
    if head.startswith(b"{"):
        return meson_json(path)
    return tap(path)


def main(paths):
    passed, failed, skipped, bad = 0, [], 0, False
    for p in paths:
        try:
            r = read(p)
        except (OSError, ValueError, KeyError, ET.ParseError) as e:
            print(f"results: {p}: {e}", file=sys.stderr)
            bad = True
            continue
        passed, failed, skipped = passed + r[0], failed + r[1], skipped + r[2]
    print(f"{passed} passed, {len(failed)} failed, {skipped} skipped")
    for name in failed:
        print(f"FAIL {name}")
    return 1 if bad or not paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
