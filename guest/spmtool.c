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
 *   spmtool bench TARGET MIB [ROUNDS]
 *
 * Measures guest memory bandwidth of MIB MiB of TARGET against MIB MiB of
 * anonymous memory bound to NUMA node 0 (ordinary RAM) in the same guest
 * (bench/spm_bench.py). Both buffers are written and read once first
 * (faulted in, warmed up); then each of ROUNDS rounds (default 5) times a
 * write pass (64-bit stores) and a read pass (64-bit loads, summed) over
 * each buffer, in 4 MiB chunks with SPM and RAM alternating chunk by chunk,
 * and prints the bandwidths in MB/s (10^6 bytes/s):
 *
 *   spmtool: bench target=... bytes=N spm_node=N ram_node=N rounds=R
 *   spmtool: bench round=K spm_write=X spm_read=X ram_write=X ram_read=X
 *   spmtool: bench done
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
#include <time.h>
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

/* Map @bytes of @target (see above); *node is its NUMA node for "node:N",
 * else -1. */
static volatile uint64_t *map_target(const char *target, size_t bytes,
                                     int *node)
{
    void *p;

    *node = -1;
    if (!strncmp(target, "node:", 5)) {
        unsigned long mask;

        *node = atoi(target + 5);
        mask = 1UL << *node;
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            die("mmap");
        }
        if (syscall(SYS_mbind, p, bytes, MPOL_BIND, &mask,
                    sizeof(mask) * 8, 0) != 0) {
            die("mbind");
        }
    } else {
        int fd = open(target, O_RDWR);

        if (fd < 0) {
            die(target);
        }
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            die("mmap");
        }
    }
    return p;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t bench_sink;

/* seconds of one write pass (64-bit stores) over @words words */
static double write_pass(volatile uint64_t *p, size_t words, uint64_t seed)
{
    double t = now();
    size_t i;

    for (i = 0; i < words; i++) {
        p[i] = seed + i;
    }
    return now() - t;
}

/* seconds of one read pass (64-bit loads, summed) over @words words */
static double read_pass(const volatile uint64_t *p, size_t words)
{
    double t = now();
    uint64_t sum = 0;
    size_t i;

    for (i = 0; i < words; i++) {
        sum += p[i];
    }
    bench_sink += sum;
    return now() - t;
}

#define BENCH_CHUNK_WORDS ((4 << 20) / sizeof(uint64_t))

/*
 * One round: a write pass, then a read pass, over both buffers, 4 MiB
 * chunk by 4 MiB chunk, SPM and RAM alternating chunk by chunk (which one
 * goes first alternates too), so that a change of the host's speed hits
 * both alike. Stores MB/s in mbs[]: SPM write, SPM read, RAM write, RAM read.
 */
static void bench_round(volatile uint64_t *spm, volatile uint64_t *ram,
                        size_t words, unsigned r, double mbs[4])
{
    double t[4] = { 0, 0, 0, 0 };
    size_t off, n;
    int op, k;

    for (op = 0; op < 2; op++) {
        for (off = 0; off < words; off += n) {
            n = words - off < BENCH_CHUNK_WORDS ? words - off : BENCH_CHUNK_WORDS;
            for (k = 0; k < 2; k++) {
                int use_spm = (k ^ (off / BENCH_CHUNK_WORDS + r)) & 1;
                volatile uint64_t *p = (use_spm ? spm : ram) + off;

                t[(use_spm ? 0 : 2) + op] += op ? read_pass(p, n)
                                                : write_pass(p, n, r + off);
            }
        }
    }
    for (k = 0; k < 4; k++) {
        mbs[k] = words * 8 / t[k] / 1e6;
    }
}

static int bench(const char *target, size_t bytes, unsigned rounds)
{
    size_t words = bytes / sizeof(uint64_t);
    volatile uint64_t *spm, *ram;
    int spm_node, ram_node;
    unsigned r;

    spm = map_target(target, bytes, &spm_node);
    ram = map_target("node:0", bytes, &ram_node);
    write_pass(spm, words, 0);            /* fault both in, warm up */
    read_pass(spm, words);
    write_pass(ram, words, 0);
    read_pass(ram, words);
    printf("spmtool: bench target=%s bytes=%zu spm_node=%d ram_node=%d "
           "rounds=%u\n", target, bytes,
           spm_node >= 0 ? node_of((void *)spm) : -1,
           node_of((void *)ram), rounds);
    fflush(stdout);
    for (r = 1; r <= rounds; r++) {
        double mbs[4];

        bench_round(spm, ram, words, r, mbs);
        printf("spmtool: bench round=%u spm_write=%.1f spm_read=%.1f "
               "ram_write=%.1f ram_read=%.1f\n", r, mbs[0], mbs[1], mbs[2],
               mbs[3]);
        fflush(stdout);
    }
    printf("spmtool: bench done\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    size_t bytes, words, i;
    unsigned interval = 1;
    volatile uint64_t *p;
    uint64_t sum, again;
    unsigned long round;
    int node = -1;

    if (argc >= 4 && !strcmp(argv[1], "bench")) {
        return bench(argv[2], strtoull(argv[3], NULL, 0) << 20,
                     argc > 4 ? strtoul(argv[4], NULL, 0) : 5);
    }
    if (argc < 4 || strcmp(argv[1], "fill")) {
        fprintf(stderr, "usage: spmtool fill /dev/daxX.Y|node:N MIB [SECONDS]\n"
                        "       spmtool bench /dev/daxX.Y|node:N MIB [ROUNDS]\n");
        return 2;
    }
    bytes = strtoull(argv[3], NULL, 0) << 20;
    words = bytes / sizeof(uint64_t);
    if (argc > 4) {
        interval = strtoul(argv[4], NULL, 0);
    }

    p = map_target(argv[2], bytes, &node);

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
