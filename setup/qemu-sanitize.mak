# Devices of the sanitizer build (setup/configure-qemu.sh --asan): only the
# machines and devices that the sanitized spm-memory-test and the fuzz
# slice start, on top of what those machines select themselves. A build
# without QEMU's default devices compiles a fraction of the tree, and it
# also shows that spm-memory builds where only its machines are selected.
CONFIG_I440FX=y
CONFIG_Q35=y
CONFIG_MICROVM=y
CONFIG_SPM_MEMORY=y
# spm-memory-test: pxb-cxl for generic ports, edu for generic initiators
CONFIG_PXB=y
CONFIG_CXL=y
# QEMU 10.0 links CXL only with the type 3 device (its stubs miss symbols)
CONFIG_CXL_MEM_DEVICE=y
# ... and its root port type needs the PCIe root port's
CONFIG_PCIE_PORT=y
CONFIG_EDU=y
