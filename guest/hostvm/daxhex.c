/*
 * daxhex PATH OFFSET LENGTH: print LENGTH bytes at OFFSET of the
 * device-dax file PATH as one line of hex (the only part of tests/hostvm
 * that busybox cannot do: a device-dax file cannot be read(), only mapped
 * shared, in windows aligned to the device's alignment, 2 MiB here).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define ALIGN (2UL << 20)

int main(int argc, char **argv)
{
    unsigned long off, len, base, maplen, i;
    unsigned char *p = MAP_FAILED;
    int fd;

    if (argc != 4) {
        fprintf(stderr, "usage: daxhex PATH OFFSET LENGTH\n");
        return 2;
    }
    off = strtoul(argv[2], NULL, 0);
    len = strtoul(argv[3], NULL, 0);
    base = off & ~(ALIGN - 1);
    maplen = (off - base + len + ALIGN - 1) & ~(ALIGN - 1);
    fd = open(argv[1], O_RDONLY);
    if (fd >= 0) {
        p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, base);
    }
    if (p == MAP_FAILED) {
        perror(argv[1]);
        return 1;
    }
    for (i = 0; i < len; i++) {
        printf("%02x", p[off - base + i]);
    }
    printf("\n");
    return 0;
}
