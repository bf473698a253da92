"""QEMU's own Python, from the working tree's python/ folder ("make tree"
makes build/qemu): the QMP client (qemu.qmp), the qtest client and the
machine launcher (qemu.machine). The harness uses these rather than
copies of its own.

Importing this module puts that folder on sys.path (its one side effect)
and re-exports what the harness uses:

    QEMUMonitorProtocol   qemu.qmp.legacy: a synchronous QMP client
                          (connect to a QEMU that listens, or accept one)
    QMPError, ExecuteError
                          qemu.qmp: any QMP failure; an error answer
    QEMUQtestProtocol     qemu.machine.qtest: the qtest protocol
    QEMUMachine, QEMUQtestMachine, VMLaunchFailure
                          qemu.machine: start, talk to and stop a QEMU
"""
import os
import sys

from spmtest import build_dir

PYTHON_DIR = os.path.join(build_dir(), "qemu", "python")
if not os.path.isdir(os.path.join(PYTHON_DIR, "qemu", "qmp")):
    raise ImportError(f"no QEMU Python in {PYTHON_DIR}: run 'make tree'")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

# pylint: disable=wrong-import-position,unused-import
from qemu.qmp import ExecuteError, QMPError  # noqa: E402,F401
from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402,F401
from qemu.machine import QEMUMachine  # noqa: E402,F401
from qemu.machine.machine import VMLaunchFailure  # noqa: E402,F401
from qemu.machine.qtest import (  # noqa: E402,F401
    QEMUQtestMachine, QEMUQtestProtocol)
