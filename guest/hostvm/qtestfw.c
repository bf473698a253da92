/*
 * qtestfw: run a QEMU that executes no guest code and report what its
 * spm-memory device looks like, from the inside of the machine that hosts
 * it (the "host VM", L1, of tests/hostvm).
 *
 *   qtestfw [--dax PATH] [--write OFFSET:LENGTH]... [--seed N] [--gpa ADDR]
 *           [--timeout SECONDS] -- QEMU [QEMU-ARGS...]
 *
 * Starts QEMU-ARGS with "-accel qtest" plus a qtest socket and a QMP
 * monitor socket, both listening here (QEMU connects to them), then:
 *
 *  0. finds the spm-memory device (the first one of query-memory-devices):
 *     its guest-physical address (or ADDR of --gpa), size and backend;
 *
 *  1. QMP: query-memory-devices, query-memdev and "info ramblock" (the host
 *     virtual address of each RAM block);
 *  2. qtest, fw_cfg DMA: the fw_cfg files etc/e820 and etc/acpi/tables
 *     (the tables in the latter are delimited by the checksum commands of
 *     etc/table-loader);
 *  3. qtest: writes a pattern (below) at each --write OFFSET of the
 *     spm-memory device's guest-physical range and reads it back; with
 *     --dax, reads the same bytes from the device-dax file PATH that backs
 *     the device (mapped in 2 MiB aligned windows, file offset = OFFSET);
 *  4. /proc/PID/numa_maps and /proc/PID/smaps of every mapping of QEMU
 *     that overlaps the device's RAM block, and the host's hugepage
 *     counters, while QEMU is still running;
 *  5. QMP quit, and QEMU's exit status.
 *
 * If QEMU refuses the configuration, its stderr and exit status are all
 * there is. Everything is printed on stdout as "key: value" lines, for a
 * test to parse; nothing is judged here.
 *
 *   qmp-memory-devices: <JSON>     return value of query-memory-devices
 *   qmp-memdev: <JSON>             return value of query-memdev
 *   ramblock: <line>               a line of HMP "info ramblock"
 *   device: memaddr=0x... size=0x... memdev=ID
 *   e820: <hex>                    fw_cfg etc/e820
 *   acpi: <SIG>@<offset>+<length>  each table found in etc/acpi/tables
 *   srat: <hex>                    the SRAT from etc/acpi/tables
 *   write: off=0x... len=N gpa=0x... pattern=FNV qtest=FNV [dax=FNV]
 *          qtest_head=HEX [dax_head=HEX]
 *   vma: 0xSTART-0xEND             a mapping overlapping the RAM block
 *   numa_maps: <line>              ... its /proc/PID/numa_maps line
 *   smaps: <Key>: <value>          ... and its /proc/PID/smaps fields
 *   meminfo: <line>                HugePages_* lines of /proc/meminfo
 *   node-hugepages: node=N size_kb=K nr=N free=N
 *   stderr: <line>                 QEMU's stderr
 *   exit: status=N | signal=N
 *   result: ok | refused | error <why>
 *
 * The pattern: the 64-bit little-endian word at device offset o (a multiple
 * of 8) is mix64(o ^ (seed << 48)), mix64 being SplitMix64's finaliser;
 * FNV is the 64-bit FNV-1a of the bytes, printed as 0x%016x. A test
 * computes both from the definition, independently of this program.
 *
 * Build: gcc -static -O2 -Wall -o qtestfw qtestfw.c
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WRITES      16
#define MAX_WRITE_LEN   (64 * 1024)
#define DAX_ALIGN       (2 * 1024 * 1024)

/* fw_cfg DMA (docs/specs/fw_cfg.rst), in the guest's first megabytes */
#define FW_CFG_DMA_PORT_LO  0x518
#define FW_CFG_FILE_DIR     0x19
#define FW_CFG_DMA_ERROR    0x01
#define FW_CFG_DMA_READ     0x02
#define FW_CFG_DMA_SELECT   0x08
#define DMA_DESC_GPA        0x100000
#define DMA_BUF_GPA         0x200000

/* A connected socket, read line by line. */
typedef struct Conn {
    int fd;
    char *buf;
    size_t len, cap;
} Conn;

typedef struct Write {
    uint64_t off, len;
} Write;

static struct {
    const char *dax;
    Write writes[MAX_WRITES];
    int nr_writes;
    uint64_t seed;
    uint64_t gpa;           /* 0: the address QMP reports */
    int timeout_ms;
    char **qemu_argv;
} opt = { .seed = 1, .timeout_ms = 120 * 1000 };

static pid_t qemu_pid;
/* a private directory for QEMU's sockets and stderr, removed at exit */
static char workdir[] = "/tmp/qtestfw.XXXXXX";
static char qtest_path[64], qmp_path[64], err_path[64];

static int reap_qemu(void);

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Stop: QEMU (if running) is killed and its stderr shown. */
static void die(const char *fmt, ...)
{
    va_list ap;

    if (qemu_pid > 0) {
        kill(qemu_pid, SIGKILL);
        reap_qemu();
    }
    printf("result: error ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(1);
}

static void cleanup(void)
{
    unlink(qtest_path);
    unlink(qmp_path);
    unlink(err_path);
    rmdir(workdir);
}

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (!p) {
        die("out of memory");
    }
    return p;
}

/* --- the pattern and its checksum ------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void pattern_fill(uint8_t *buf, uint64_t off, uint64_t len)
{
    uint64_t i, w;
    int b;

    for (i = 0; i < len; i += 8) {
        w = mix64((off + i) ^ (opt.seed << 48));
        for (b = 0; b < 8; b++) {
            buf[i + b] = w >> (8 * b);
        }
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    return h;
}

static char *hex_encode(const uint8_t *p, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *s = xrealloc(NULL, 2 * len + 1);
    size_t i;

    for (i = 0; i < len; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * len] = '\0';
    return s;
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode "0x<hex>" of exactly len bytes into buf; false if malformed. */
static bool hex_decode(const char *s, uint8_t *buf, size_t len)
{
    size_t i;
    int hi, lo;

    if (strncmp(s, "0x", 2) != 0 || strlen(s + 2) != 2 * len) {
        return false;
    }
    for (i = 0; i < len; i++) {
        hi = nibble(s[2 + 2 * i]);
        lo = nibble(s[3 + 2 * i]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        buf[i] = hi << 4 | lo;
    }
    return true;
}

/* --- sockets and QEMU ----------------------------------------------- */

static int listen_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || strlen(path) >= sizeof(sa.sun_path)) {
        die("socket %s: %s", path, strerror(errno));
    }
    strcpy(sa.sun_path, path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        die("bind/listen %s: %s", path, strerror(errno));
    }
    return fd;
}

/* Print QEMU's stderr (captured in a file) as "stderr:" lines. */
static void print_stderr(void)
{
    char line[4096];
    FILE *f = fopen(err_path, "r");

    if (!f) {
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        printf("stderr: %s\n", line);
    }
    fclose(f);
}

/*
 * Wait for QEMU to exit and print its status; print its stderr. Returns
 * the exit status, or 128 + signal.
 */
static int reap_qemu(void)
{
    pid_t pid = qemu_pid;
    int status, rc;

    qemu_pid = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            die("waitpid: %s", strerror(errno));
        }
    }
    print_stderr();
    if (WIFEXITED(status)) {
        rc = WEXITSTATUS(status);
        printf("exit: status=%d\n", rc);
    } else {
        rc = 128 + WTERMSIG(status);
        printf("exit: signal=%d\n", WTERMSIG(status));
    }
    fflush(stdout);
    return rc;
}

/* QEMU refused to start (or died): report it and stop. */
static void __attribute__((noreturn)) refused(void)
{
    int rc = reap_qemu();

    printf("result: %s\n", rc ? "refused" : "error QEMU exited with status 0");
    exit(rc ? 0 : 1);
}

/*
 * Accept QEMU's connection on a listening socket. Returns -1 if QEMU
 * exited first.
 */
static int accept_qemu(int lfd)
{
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    int waited = 0, fd;
    siginfo_t info;

    for (;;) {
        if (poll(&p, 1, 100) > 0) {
            fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                return fd;
            }
        }
        /* exited? (WNOWAIT: leave it to reap_qemu()) */
        info.si_pid = 0;
        if (waitid(P_PID, qemu_pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == qemu_pid) {
            return -1;
        }
        waited += 100;
        if (waited > opt.timeout_ms) {
            die("QEMU did not connect within %d ms", opt.timeout_ms);
        }
    }
}

/* The next line from a connection, without its line end; NULL on EOF. */
static char *conn_line(Conn *c)
{
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    char *nl, *line;
    ssize_t n;
    size_t l;

    for (;;) {
        nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            l = nl - c->buf;
            line = xrealloc(NULL, l + 1);
            memcpy(line, c->buf, l);
            line[l] = '\0';
            if (l && line[l - 1] == '\r') {
                line[l - 1] = '\0';
            }
            memmove(c->buf, nl + 1, c->len - l - 1);
            c->len -= l + 1;
            return line;
        }
        if (c->cap - c->len < 65536) {
            c->cap = c->cap * 2 + 65536;
            c->buf = xrealloc(c->buf, c->cap);
        }
        if (poll(&p, 1, opt.timeout_ms) <= 0) {
            die("no answer from QEMU within %d ms", opt.timeout_ms);
        }
        n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return NULL;
        }
        c->len += n;
    }
}

static void conn_send(Conn *c, const char *fmt, ...)
{
    char *s;
    va_list ap;
    size_t off = 0;
    ssize_t n;
    int len;

    va_start(ap, fmt);
    len = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (len < 0) {
        die("out of memory");
    }
    while (off < (size_t)len) {
        n = write(c->fd, s + off, len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            die("write to QEMU: %s", strerror(errno));
        }
        off += n;
    }
    free(s);
}

/* --- qtest ---------------------------------------------------------- */

static Conn qt;

/* Send a qtest command; returns the reply line ("OK ..."), or dies. */
static char *qtest(const char *fmt, ...)
{
    char *cmd, *line;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&cmd, fmt, ap) < 0) {
        die("out of memory");
    }
    va_end(ap);
    conn_send(&qt, "%s\n", cmd);
    for (;;) {
        line = conn_line(&qt);
        if (!line) {
            die("qtest connection closed during '%.40s'", cmd);
        }
        if (!strncmp(line, "OK", 2)) {
            break;
        }
        if (!strncmp(line, "FAIL", 4) || !strncmp(line, "ERR", 3)) {
            die("qtest '%.40s': %s", cmd, line);
        }
        free(line);             /* asynchronous "IRQ ..." lines */
    }
    free(cmd);
    return line;
}

static void qtest_read(uint64_t gpa, uint8_t *buf, size_t len)
{
    char *r = qtest("read 0x%" PRIx64 " 0x%zx", gpa, len);

    if (!hex_decode(r + 3, buf, len)) {
        die("qtest read: malformed reply");
    }
    free(r);
}

static void qtest_write(uint64_t gpa, const uint8_t *buf, size_t len)
{
    char *hex = hex_encode(buf, len);

    free(qtest("write 0x%" PRIx64 " 0x%zx 0x%s", gpa, len, hex));
    free(hex);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* Read length bytes of fw_cfg item key by DMA; the caller frees. */
static uint8_t *fw_cfg_read(uint16_t key, uint32_t length)
{
    uint8_t desc[16] = { 0 }, status[4];
    uint8_t *buf = xrealloc(NULL, length ? length : 1);
    uint32_t a = DMA_DESC_GPA;
    int i;

    if (!length) {
        return buf;
    }
    put_be32(desc, (uint32_t)key << 16 | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ);
    put_be32(desc + 4, length);
    for (i = 0; i < 8; i++) {
        desc[8 + i] = (uint64_t)DMA_BUF_GPA >> (56 - 8 * i);
    }
    qtest_write(DMA_DESC_GPA, desc, sizeof(desc));
    /*
     * The DMA address register is big-endian; writing its low half starts
     * the transfer. outl takes a CPU (little-endian) value: swap it.
     */
    free(qtest("outl 0x%x 0x%x", FW_CFG_DMA_PORT_LO, __builtin_bswap32(a)));
    qtest_read(DMA_DESC_GPA, status, sizeof(status));
    if (be32(status) & FW_CFG_DMA_ERROR) {
        die("fw_cfg DMA error reading key 0x%x", key);
    }
    qtest_read(DMA_BUF_GPA, buf, length);
    return buf;
}

/* The contents of fw_cfg file name (its size in *size), or NULL. */
static uint8_t *fw_cfg_file(const char *name, uint32_t *size)
{
    uint8_t *dir = fw_cfg_read(FW_CFG_FILE_DIR, 4), *e, *data = NULL;
    uint32_t n = be32(dir), i;

    free(dir);
    dir = fw_cfg_read(FW_CFG_FILE_DIR, 4 + 64 * n);
    for (i = 0; i < n; i++) {
        e = dir + 4 + 64 * i;       /* be32 size, be16 select, u16, name[56] */
        if (!strncmp((char *)e + 8, name, 56)) {
            *size = be32(e);
            data = fw_cfg_read(e[4] << 8 | e[5], *size);
            break;
        }
    }
    free(dir);
    return data;
}

static void print_hex(const char *key, const uint8_t *p, size_t len)
{
    char *hex = hex_encode(p, len);

    printf("%s: %s\n", key, hex);
    free(hex);
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * List the ACPI tables of the etc/acpi/tables blob and print the SRAT.
 * No firmware ran, so the blob is as QEMU built it: pointers between the
 * tables are not patched and checksums not computed. The tables' extents
 * are those of the table loader's ADD_CHECKSUM commands (etc/table-loader,
 * 128-byte little-endian entries; hw/acpi/bios-linker-loader.c), each over
 * one table: u32 command (3), char file[56], u32 offset, u32 start,
 * u32 length.
 */
static void print_acpi(const uint8_t *blob, uint32_t size,
                       const uint8_t *loader, uint32_t loader_size)
{
    const char *file = "etc/acpi/tables";
    const uint8_t *e;
    uint32_t start, len, i;

    for (i = 0; i + 128 <= loader_size; i += 128) {
        e = loader + i;
        if (le32(e) != 3 || strncmp((const char *)e + 4, file, 56)) {
            continue;
        }
        start = le32(e + 64);
        len = le32(e + 68);
        if (start > size || len > size - start || len < 8) {
            die("table loader: checksum range 0x%x+%u outside %s", start,
                len, file);
        }
        printf("acpi: %.4s@0x%x+%u\n", (const char *)blob + start, start, len);
        if (!memcmp(blob + start, "SRAT", 4)) {
            print_hex("srat", blob + start, len);
        }
    }
}

/* --- QMP ------------------------------------------------------------ */

static Conn qmp;

/*
 * Execute a QMP command and return its reply line (events are skipped);
 * NULL if QEMU closed the connection.
 */
static char *qmp_cmd(const char *json)
{
    char *line;

    conn_send(&qmp, "%s\n", json);
    while ((line = conn_line(&qmp))) {
        if (strstr(line, "\"return\"") || strstr(line, "\"error\"")) {
            return line;
        }
        free(line);
    }
    return NULL;
}

/*
 * The value of a QMP reply's "return" member: the reply line is
 * {"return": VALUE} (QEMU adds no other member without an "id"); the
 * reply is cut in place.
 */
static const char *qmp_return(char *reply)
{
    char *r = strstr(reply, "\"return\":"), *end;

    if (!r) {
        die("QMP error: %s", reply);
    }
    r += strlen("\"return\":");
    while (*r == ' ') {
        r++;
    }
    end = strrchr(r, '}');
    if (end) {
        *end = '\0';
    }
    return r;
}

/* Integer member key of the JSON text at s ("key": 123); false if absent. */
static bool json_uint(const char *s, const char *key, uint64_t *val)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(s, pat);
    if (!p) {
        return false;
    }
    return sscanf(p + strlen(pat), "%" SCNu64, val) == 1;
}

/* String member key of the JSON text at s, into buf; false if absent. */
static bool json_str(const char *s, const char *key, char *buf, size_t size)
{
    char pat[64];
    const char *p, *q;

    snprintf(pat, sizeof(pat), "\"%s\": \"", key);
    p = strstr(s, pat);
    if (!p) {
        return false;
    }
    p += strlen(pat);
    q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= size) {
        return false;
    }
    memcpy(buf, p, q - p);
    buf[q - p] = '\0';
    return true;
}

/*
 * Print the HMP "info ramblock" table (its JSON string: lines separated by
 * "\r\n" escapes) and return the host address of the block named block.
 */
static uint64_t print_ramblocks(const char *ret, const char *block)
{
    char line[512], name[128];
    const char *p = ret + 1;     /* after the opening quote */
    uint64_t hva = 0;
    size_t l;

    while (*p && *p != '"') {
        for (l = 0; *p && *p != '"' && strncmp(p, "\\r\\n", 4); p++) {
            if (l < sizeof(line) - 1) {
                line[l++] = *p;
            }
        }
        line[l] = '\0';
        if (!strncmp(p, "\\r\\n", 4)) {
            p += 4;
        }
        if (!l) {
            continue;
        }
        printf("ramblock: %s\n", line);
        /* name psize offset used total hva ro; psize may be "2 MiB" */
        if (sscanf(line, "%127s", name) == 1 && !strcmp(name, block)) {
            /* the fourth hex number: offset, used, total, hva */
            const char *x = line;
            int i;

            for (i = 0; i < 4 && x; i++) {
                x = strstr(i ? x + 2 : x, "0x");
            }
            if (!x || sscanf(x, "%" SCNx64, &hva) != 1) {
                hva = 0;
            }
        }
    }
    return hva;
}

/* --- /proc of QEMU -------------------------------------------------- */

/*
 * The /proc/PID/numa_maps line of QEMU's mapping that starts at start
 * (lines begin with that address in hex), into buf; "" if there is none.
 */
static void numa_maps_line(uint64_t start, char *buf, size_t size)
{
    char path[64], want[24];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/numa_maps", (int)qemu_pid);
    snprintf(want, sizeof(want), "%" PRIx64 " ", start);
    buf[0] = '\0';
    f = fopen(path, "r");
    if (!f) {
        die("cannot open %s: %s", path, strerror(errno));
    }
    while (fgets(buf, size, f)) {
        if (!strncmp(buf, want, strlen(want))) {
            buf[strcspn(buf, "\n")] = '\0';
            fclose(f);
            return;
        }
    }
    buf[0] = '\0';
    fclose(f);
}

/*
 * Print, for each mapping of QEMU that overlaps [start, end), its range,
 * numa_maps line and smaps fields. In smaps a mapping starts with a line
 * "START-END PERMS ..."; its fields ("Key: value") follow.
 */
static void print_mappings(uint64_t start, uint64_t end)
{
    char path[64], line[1024], numa[1024];
    unsigned long long lo, hi;
    bool inside = false;
    int n;
    FILE *smaps;

    snprintf(path, sizeof(path), "/proc/%d/smaps", (int)qemu_pid);
    smaps = fopen(path, "r");
    if (!smaps) {
        die("cannot open %s: %s", path, strerror(errno));
    }
    while (fgets(line, sizeof(line), smaps)) {
        line[strcspn(line, "\n")] = '\0';
        n = 0;
        if (sscanf(line, "%llx-%llx %n", &lo, &hi, &n) == 2 && n) {
            inside = lo < end && hi > start;
            if (inside) {
                numa_maps_line(lo, numa, sizeof(numa));
                printf("vma: 0x%llx-0x%llx\n", lo, hi);
                printf("numa_maps: %s\n", numa);
            }
        } else if (inside) {
            printf("smaps: %s\n", line);
        }
    }
    fclose(smaps);
}

/* The number in file path, or -1. */
static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;

    if (f) {
        if (fscanf(f, "%ld", &v) != 1) {
            v = -1;
        }
        fclose(f);
    }
    return v;
}

/* The host's 2 MiB hugepages: /proc/meminfo, and per node. */
static void print_hugepages(void)
{
    const char *node_dir =
        "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB";
    char line[256], dir[128], path[160];
    FILE *f = fopen("/proc/meminfo", "r");
    int node;

    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "HugePages_", 10) ||
            !strncmp(line, "Hugepagesize:", 13)) {
            printf("meminfo: %s", line);
        }
    }
    if (f) {
        fclose(f);
    }
    for (node = 0; node < 64; node++) {
        snprintf(dir, sizeof(dir), node_dir, node);
        snprintf(path, sizeof(path), "%s/nr_hugepages", dir);
        if (access(path, R_OK)) {
            continue;
        }
        printf("node-hugepages: node=%d size_kb=2048 nr=%ld", node,
               read_long(path));
        snprintf(path, sizeof(path), "%s/free_hugepages", dir);
        printf(" free=%ld\n", read_long(path));
    }
}

/* --- the device-dax file -------------------------------------------- */

/* Read len bytes at offset off of the device-dax file into buf. */
static void dax_read(int fd, uint64_t off, uint8_t *buf, size_t len)
{
    uint64_t base = off & ~(uint64_t)(DAX_ALIGN - 1);
    size_t maplen = off - base + len;
    uint8_t *p;

    /* device-dax mappings must be shared and aligned to the device's align */
    maplen = (maplen + DAX_ALIGN - 1) & ~(size_t)(DAX_ALIGN - 1);
    p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, base);
    if (p == MAP_FAILED) {
        die("mmap %s at 0x%" PRIx64 ": %s", opt.dax, base, strerror(errno));
    }
    memcpy(buf, p + (off - base), len);
    munmap(p, maplen);
}

/* Write the pattern at each --write offset and read it back. */
static void check_writes(uint64_t gpa, uint64_t size)
{
    uint8_t *pat, *got, *dax = NULL;
    int i, fd = -1;
    char *h1, *h2;

    if (opt.dax) {
        fd = open(opt.dax, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            die("open %s: %s", opt.dax, strerror(errno));
        }
    }
    for (i = 0; i < opt.nr_writes; i++) {
        Write *w = &opt.writes[i];

        if (w->off + w->len > size) {
            die("--write 0x%" PRIx64 ":%" PRIu64 " is outside the device (0x%"
                PRIx64 " bytes)", w->off, w->len, size);
        }
        pat = xrealloc(NULL, w->len);
        got = xrealloc(NULL, w->len);
        pattern_fill(pat, w->off, w->len);
        qtest_write(gpa + w->off, pat, w->len);
        qtest_read(gpa + w->off, got, w->len);
        h1 = hex_encode(got, w->len < 16 ? w->len : 16);
        printf("write: off=0x%" PRIx64 " len=%" PRIu64 " gpa=0x%" PRIx64
               " pattern=0x%016" PRIx64 " qtest=0x%016" PRIx64,
               w->off, w->len, gpa + w->off, fnv1a(pat, w->len),
               fnv1a(got, w->len));
        if (fd >= 0) {
            dax = xrealloc(NULL, w->len);
            dax_read(fd, w->off, dax, w->len);
            printf(" dax=0x%016" PRIx64, fnv1a(dax, w->len));
        }
        printf(" qtest_head=%s", h1);
        if (dax) {
            h2 = hex_encode(dax, w->len < 16 ? w->len : 16);
            printf(" dax_head=%s", h2);
            free(h2);
        }
        printf("\n");
        free(h1);
        free(pat);
        free(got);
        free(dax);
        dax = NULL;
    }
    if (fd >= 0) {
        close(fd);
    }
}

/* --- main ----------------------------------------------------------- */

/*
 * A number of the command line (C syntax: 0x for hex); false if malformed.
 * (A standalone program: QEMU's qemu_strtou64() is not at hand.)
 */
static bool parse_u64(const char *s, char **end, uint64_t *val)
{
    char *e;

    errno = 0;
    *val = strtoull(s, &e, 0);
    if (end) {
        *end = e;
    } else if (*e) {
        return false;
    }
    return !errno && e != s;
}

static void usage(void)
{
    fprintf(stderr, "usage: qtestfw [--dax PATH] [--write OFFSET:LENGTH]... "
            "[--seed N] [--gpa ADDR] [--timeout SECONDS] -- QEMU [ARGS...]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    char *end;
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "--")) {
            opt.qemu_argv = argv + i + 1;
            break;
        }
        if (!v) {
            usage();
        }
        if (!strcmp(a, "--dax")) {
            opt.dax = v;
        } else if (!strcmp(a, "--write")) {
            Write *w = &opt.writes[opt.nr_writes];

            if (opt.nr_writes == MAX_WRITES) {
                usage();
            }
            if (!parse_u64(v, &end, &w->off) || *end != ':' ||
                !parse_u64(end + 1, NULL, &w->len) ||
                !w->len || w->len > MAX_WRITE_LEN ||
                (w->off | w->len) % 8) {
                usage();
            }
            opt.nr_writes++;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_u64(v, NULL, &opt.seed)) {
                usage();
            }
        } else if (!strcmp(a, "--gpa")) {
            if (!parse_u64(v, NULL, &opt.gpa)) {
                usage();
            }
        } else if (!strcmp(a, "--timeout")) {
            opt.timeout_ms = atoi(v) * 1000;
        } else {
            usage();
        }
        i++;
    }
    if (!opt.qemu_argv || !opt.qemu_argv[0]) {
        usage();
    }
}

/*
 * Start QEMU with the user's arguments plus ours (the qtest accelerator and
 * the two sockets), its stderr going to a file.
 */
static void start_qemu(void)
{
    static char qtest_arg[80], qmp_arg[96];
    char **args;
    int n, i;

    for (n = 0; opt.qemu_argv[n]; n++) {
        continue;
    }
    args = xrealloc(NULL, (n + 11) * sizeof(*args));
    memcpy(args, opt.qemu_argv, n * sizeof(*args));
    snprintf(qtest_arg, sizeof(qtest_arg), "unix:%s", qtest_path);
    snprintf(qmp_arg, sizeof(qmp_arg), "socket,id=qtestfw-qmp,path=%s",
             qmp_path);
    args[n++] = "-accel";
    args[n++] = "qtest";
    args[n++] = "-qtest";
    args[n++] = qtest_arg;
    args[n++] = "-qtest-log";       /* default: the protocol on stderr */
    args[n++] = "none";
    args[n++] = "-chardev";
    args[n++] = qmp_arg;
    args[n++] = "-mon";
    args[n++] = "chardev=qtestfw-qmp,mode=control";
    args[n] = NULL;

    printf("argv:");
    for (i = 0; i < n; i++) {
        printf(" %s", args[i]);
    }
    printf("\n");
    fflush(stdout);

    qemu_pid = fork();
    if (qemu_pid < 0) {
        die("fork: %s", strerror(errno));
    }
    if (qemu_pid == 0) {
        int efd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nfd = open("/dev/null", O_RDWR);

        if (efd < 0 || nfd < 0) {
            _exit(127);
        }
        dup2(nfd, 0);
        dup2(nfd, 1);
        dup2(efd, 2);
        execv(args[0], args);
        dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    printf("l2-pid: %d\n", (int)qemu_pid);
    free(args);
}

/*
 * Connect to QEMU's qtest and QMP; if QEMU exits instead (it refused the
 * configuration), report that and stop.
 */
static void connect_qemu(int qtest_lfd, int qmp_lfd)
{
    char *line;

    /* QEMU connects both while creating its backends, then may still fail */
    qt.fd = accept_qemu(qtest_lfd);
    if (qt.fd < 0) {
        refused();
    }
    qmp.fd = accept_qemu(qmp_lfd);
    if (qmp.fd < 0) {
        refused();
    }
    /* the QMP greeting comes once the machine is complete */
    line = conn_line(&qmp);
    if (!line) {
        refused();
    }
    free(line);
    line = qmp_cmd("{\"execute\": \"qmp_capabilities\"}");
    if (!line) {
        refused();
    }
    free(line);
}

/*
 * What QMP says about the spm-memory device and the memory backends: the
 * device's address and size, and the host address of its backend's RAM
 * block (0 if not found).
 */
static uint64_t report_qmp(uint64_t *memaddr, uint64_t *size)
{
    char block[128], memdev[128];
    const char *ret;
    uint64_t hva;
    char *reply;

    reply = qmp_cmd("{\"execute\": \"query-memory-devices\"}");
    if (!reply) {
        die("QEMU closed QMP");
    }
    ret = qmp_return(reply);
    printf("qmp-memory-devices: %s\n", ret);
    ret = strstr(ret, "\"spm-memory\"");
    if (!ret || !json_uint(ret, "memaddr", memaddr) ||
        !json_uint(ret, "size", size) ||
        !json_str(ret, "memdev", memdev, sizeof(memdev))) {
        die("no spm-memory device in query-memory-devices");
    }
    free(reply);
    /* RAM blocks of memory backends are named after the object's id */
    snprintf(block, sizeof(block), "%s",
             strrchr(memdev, '/') ? strrchr(memdev, '/') + 1 : memdev);
    printf("device: memaddr=0x%" PRIx64 " size=0x%" PRIx64 " memdev=%s\n",
           *memaddr, *size, block);

    reply = qmp_cmd("{\"execute\": \"query-memdev\"}");
    if (!reply) {
        die("QEMU closed QMP");
    }
    printf("qmp-memdev: %s\n", qmp_return(reply));
    free(reply);

    reply = qmp_cmd("{\"execute\": \"human-monitor-command\", "
                    "\"arguments\": {\"command-line\": \"info ramblock\"}}");
    if (!reply) {
        die("QEMU closed QMP");
    }
    hva = print_ramblocks(qmp_return(reply), block);
    free(reply);
    return hva;
}

/* The firmware's view: etc/e820 and the ACPI tables, read over fw_cfg. */
static void report_firmware(void)
{
    uint32_t e820_size, tables_size, loader_size;
    uint8_t *e820, *tables, *loader;

    e820 = fw_cfg_file("etc/e820", &e820_size);
    if (!e820) {
        die("no fw_cfg file etc/e820");
    }
    print_hex("e820", e820, e820_size);
    free(e820);

    tables = fw_cfg_file("etc/acpi/tables", &tables_size);
    loader = fw_cfg_file("etc/table-loader", &loader_size);
    if (!tables || !loader) {
        die("no fw_cfg file etc/acpi/tables or etc/table-loader");
    }
    print_acpi(tables, tables_size, loader, loader_size);
    free(tables);
    free(loader);
}

/* QMP quit; QEMU's exit status. */
static int stop_qemu(void)
{
    char *line;

    free(qmp_cmd("{\"execute\": \"quit\"}"));
    while ((line = conn_line(&qmp))) {
        free(line);
    }
    return reap_qemu();
}

int main(int argc, char **argv)
{
    uint64_t memaddr, size, hva;
    int qtest_lfd, qmp_lfd, rc;

    parse_args(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(workdir)) {
        die("mkdtemp: %s", strerror(errno));
    }
    atexit(cleanup);
    snprintf(qtest_path, sizeof(qtest_path), "%s/qtest.sock", workdir);
    snprintf(qmp_path, sizeof(qmp_path), "%s/qmp.sock", workdir);
    snprintf(err_path, sizeof(err_path), "%s/stderr", workdir);
    qtest_lfd = listen_unix(qtest_path);
    qmp_lfd = listen_unix(qmp_path);

    start_qemu();
    connect_qemu(qtest_lfd, qmp_lfd);
    hva = report_qmp(&memaddr, &size);
    report_firmware();
    check_writes(opt.gpa ? opt.gpa : memaddr, size);
    if (hva) {
        printf("hva: 0x%" PRIx64 "\n", hva);
        print_mappings(hva, hva + size);
    } else {
        printf("hva: none\n");
    }
    print_hugepages();

    rc = stop_qemu();
    printf("result: %s\n", rc ? "error QEMU exited with an error" : "ok");
    return rc ? 1 : 0;
}
