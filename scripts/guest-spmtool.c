/*
 * spmtool: runs inside the test guest (static, in the initramfs).
 *
 *   spmtool fill TARGET MIB [SECONDS]
 *
 * Maps MIB MiB of specific-purpose memory, fills it with a pattern derived
 * from the offset, prints its checksum, then re-reads it and prints the
 * checksum again every SECONDS (default 1) for ever:
 *
 *   spmtool: filled target=... bytes=N checksum=0x... node=N
 *   spmtool: verify round=K checksum=0x... ok|BAD
 *
 * TARGET is a device-dax character device (/dev/dax0.0, Linux 6.1: the
 * memory is mapped directly) or "node:N" (Linux 6.12, kmem: anonymous
 * memory bound to NUMA node N, which holds only the spm-memory).
 *
 * Written for the spm-memory tests; SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MPOL_BIND 2
#define MPOL_F_NODE (1 << 0)
#define MPOL_F_ADDR (1 << 1)

static uint64_t pattern(uint64_t i)
{
    uint64_t z = i + 0x9e3779b97f4a7c15ULL;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t checksum(const volatile uint64_t *p, size_t words)
{
    uint64_t sum = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < words; i++) {
        sum = (sum ^ p[i]) * 0x100000001b3ULL;
    }
    return sum;
}

static int node_of(void *addr)
{
    int node = -1;

    if (syscall(SYS_get_mempolicy, &node, NULL, 0, addr,
                MPOL_F_NODE | MPOL_F_ADDR) != 0) {
        return -1;
    }
    return node;
}

static void die(const char *what)
{
    fprintf(stderr, "spmtool: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv)
{
    size_t bytes, words, i;
    unsigned interval = 1;
    volatile uint64_t *p;
    uint64_t sum, again;
    unsigned long round;
    int node = -1;

    if (argc < 4 || strcmp(argv[1], "fill")) {
        fprintf(stderr, "usage: spmtool fill /dev/daxX.Y|node:N MIB [SECONDS]\n");
        return 2;
    }
    bytes = strtoull(argv[3], NULL, 0) << 20;
    words = bytes / sizeof(uint64_t);
    if (argc > 4) {
        interval = strtoul(argv[4], NULL, 0);
    }

    if (!strncmp(argv[2], "node:", 5)) {
        unsigned long mask;

        node = atoi(argv[2] + 5);
        mask = 1UL << node;
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            die("mmap");
        }
        if (syscall(SYS_mbind, (void *)p, bytes, MPOL_BIND, &mask,
                    sizeof(mask) * 8, 0) != 0) {
            die("mbind");
        }
    } else {
        int fd = open(argv[2], O_RDWR);

        if (fd < 0) {
            die(argv[2]);
        }
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            die("mmap");
        }
    }

    for (i = 0; i < words; i++) {
        p[i] = pattern(i);
    }
    sum = checksum(p, words);
    printf("spmtool: filled target=%s bytes=%zu checksum=0x%016" PRIx64
           " node=%d\n", argv[2], bytes, sum,
           node >= 0 ? node_of((void *)p) : -1);
    fflush(stdout);

    for (round = 1;; round++) {
        sleep(interval);
        again = checksum(p, words);
        printf("spmtool: verify round=%lu checksum=0x%016" PRIx64 " %s\n",
               round, again, again == sum ? "ok" : "BAD");
        fflush(stdout);
    }
}
