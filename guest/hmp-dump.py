#!/usr/bin/python3
"""guest/hmp-dump.py SOCKET: what a stuck guest's vCPUs are doing.

Connects to QEMU's human monitor on the unix socket SOCKET (guest/boot.sh
gives each guest one) and prints "info status", "info cpus", "info
registers -a" and, for each vCPU, the bytes at its RIP and the top of
its stack (this QEMU has no disassembler). Used by
guest/boot.sh when a guest outlives its time limit, before QEMU is killed.
"""
import re
import socket
import sys

PROMPT = b"(qemu) "


def hmp(sock, command):
    """Send one command; return its output (up to the next prompt)."""
    sock.sendall(command.encode() + b"\n")
    data = b""
    while not data.endswith(PROMPT):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    text = data.decode(errors="replace").replace("\r", "")
    # the first line is the monitor's echo of the command, as a terminal
    # would redraw it keystroke by keystroke
    return text.partition("\n")[2].removesuffix(PROMPT.decode())


def main():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(sys.argv[1])
    banner = b""
    while not banner.endswith(PROMPT):
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("hmp-dump: the monitor closed the connection")
        banner += chunk
    out = {c: hmp(sock, c)
           for c in ("info status", "info cpus", "info registers -a")}
    for command, text in out.items():
        print(f"### {command}\n{text}")
    for index in re.findall(r"CPU #(\d+)", out["info cpus"]):
        hmp(sock, f"cpu {index}")
        for what in ("x/32xb $pc", "x/32gx $sp"):
            print(f"### CPU {index}: {what}\n{hmp(sock, what)}")


if __name__ == "__main__":
    main()
