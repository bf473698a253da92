"""A small QMP client: one JSON command at a time, events kept for later.

Connect to a QEMU that listens (QMP.connect(path)) or take a socket that
QEMU connected to (QMP(conn)). Errors from QEMU raise QMPError.
"""
import json
import socket
import time


class QMPError(RuntimeError):
    """QEMU answered a command with an error."""

    def __init__(self, command, error):
        super().__init__(f"{command}: {error.get('desc', error)}")
        self.command, self.error = command, error


class QMP:
    def __init__(self, sock, timeout=None):
        """Greet QEMU on a connected socket; every read waits at most
        `timeout` seconds (None: no limit)."""
        self.sock = sock
        self.sock.settimeout(timeout)
        self.file = sock.makefile("rw")
        self.events = []
        self.greeting = self._read()
        self.cmd("qmp_capabilities")

    @classmethod
    def connect(cls, path, wait=600, proc=None, timeout=None):
        """Connect to QEMU's QMP server socket at `path`, waiting up to
        `wait` seconds for it to listen, or until `proc` (the process that
        starts QEMU, if given) exits: then the OSError is raised."""
        deadline = time.monotonic() + wait
        while True:
            sock = socket.socket(socket.AF_UNIX)
            try:
                sock.connect(path)
                return cls(sock, timeout)
            except OSError:
                sock.close()
                if time.monotonic() > deadline or \
                        (proc is not None and proc.poll() is not None):
                    raise
                time.sleep(0.05)

    def _read(self):
        line = self.file.readline()
        if not line:
            raise EOFError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, **args):
        """Run a command; return its answer, keep the events before it."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            msg = self._read()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise QMPError(name, msg["error"])
            self.events.append(msg)

    def wait_event(self, name):
        """The first event called `name` (kept or still to come)."""
        while True:
            for i, e in enumerate(self.events):
                if e.get("event") == name:
                    return self.events.pop(i)
            self.events.append(self._read())

    def close(self):
        try:
            self.file.close()
        finally:
            self.sock.close()
