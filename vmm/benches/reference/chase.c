/* chase.c: the latency of a dependent load from memory on the host, for the objects bench
 * (vmm/benches/objects.rs), beside the guest's (`objdemo chase`): a random cycle over the 64-byte
 * lines of MIB MiB, followed for 2M loads, in three kinds of memory:
 *   file   a file in DIR mapped shared and written page by page (4 KiB page-cache pages; a
 *          pool that PMDK creates can get large folios instead)
 *   anon   private anonymous memory with MADV_NOHUGEPAGE (4 KiB pages)
 *   huge   private anonymous memory with MADV_HUGEPAGE (2 MiB pages; no line if the kernel
 *          refuses the advice)
 * Usage: chase DIR MIB; prints one `RESULT what=KIND ns=NS` line per kind. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define LOADS 2000000u

static double chase(uint64_t *base, size_t words) {
    size_t lines = words / 8;
    uint32_t *order = malloc(lines * sizeof *order);
    if (!order) {
        perror("chase: malloc");
        exit(1);
    }
    for (size_t i = 0; i < lines; i++) order[i] = (uint32_t)i;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = lines - 1; i > 0; i--) { /* Sattolo's shuffle: one cycle */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t j = x % i;
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < lines; i++) base[(size_t)order[i] * 8] = (uint64_t)order[(i + 1) % lines] * 8;
    free(order);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    volatile uint64_t *p = base;
    uint64_t at = 0;
    for (unsigned i = 0; i < LOADS; i++) at = p[at];
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (at == UINT64_MAX) puts("");
    return ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / LOADS;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: chase DIR MIB\n");
        return 2;
    }
    size_t bytes = strtoull(argv[2], NULL, 10) << 20;
    char path[4096];
    snprintf(path, sizeof path, "%s/chase.pool", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)bytes) != 0) {
        perror(path);
        return 1;
    }
    uint64_t *file = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (file == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("RESULT what=file ns=%.1f\n", chase(file, bytes / 8));
    munmap(file, bytes);
    close(fd);
    unlink(path);
    const struct { const char *what; int advice; } kinds[] = {{"anon", MADV_NOHUGEPAGE},
                                                              {"huge", MADV_HUGEPAGE}};
    for (int k = 0; k < 2; k++) {
        /* 2 MiB-aligned, so that huge pages can back all of it. */
        size_t len = bytes + (2u << 20);
        char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        uint64_t *mem = (uint64_t *)(((uintptr_t)raw + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
        if (madvise(mem, bytes, kinds[k].advice) != 0) {
            /* Without transparent huge pages there is no 2 MiB row to print. */
            fprintf(stderr, "chase: madvise for %s: ", kinds[k].what);
            perror("");
            munmap(raw, len);
            continue;
        }
        printf("RESULT what=%s ns=%.1f\n", kinds[k].what, chase(mem, bytes / 8));
        munmap(raw, len);
    }
    return 0;
}
