/* Shared helpers for the peer reference benchmarks (MPICH / Open MPI).
 * Part of tocsin's bench/peers: C11, no dependency beyond MPI and POSIX. */
#ifndef TOCSIN_PEERS_COMMON_H
#define TOCSIN_PEERS_COMMON_H

#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic wall clock in microseconds. */
static inline double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* CPU time consumed by the whole process (all its threads), microseconds. */
static inline double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* Short implementation name from MPI_Get_library_version:
 *   "MPICH Version:\t4.0.2\n..."            -> "MPICH 4.0.2"
 *   "Open MPI v4.1.4, package: ..., ..."     -> "Open MPI v4.1.4"
 * Anything else: the first line, cut at the first comma. */
static inline void impl_name(char *out, size_t outlen)
{
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    lib[len < (int)sizeof lib ? len : (int)sizeof lib - 1] = '\0';
    const char *tag = "MPICH Version:";
    if (strncmp(lib, tag, strlen(tag)) == 0) {
        const char *v = lib + strlen(tag);
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strcspn(v, " \t\r\n");
        snprintf(out, outlen, "MPICH %.*s", (int)n, v);
    } else {
        size_t n = strcspn(lib, ",\r\n");
        snprintf(out, outlen, "%.*s", (int)n, lib);
    }
    /* keep it a safe JSON string */
    for (char *p = out; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = ' ';
}

/* Parse a size with an optional K/M/G suffix (binary multiples). */
static inline long long parse_size(const char *s)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    switch (toupper((unsigned char)*end)) {
    case '\0': return v;
    case 'K': v <<= 10; break;
    case 'M': v <<= 20; break;
    case 'G': v <<= 30; break;
    default: return -1;
    }
    if (end[1] == '\0' || ((end[1] == 'i' || end[1] == 'I') && end[2] == '\0') ||
        ((end[1] == 'b' || end[1] == 'B') && end[2] == '\0'))
        return v;
    return -1;
}

/* Parse a comma-separated list of sizes (with suffixes) into arr; returns count or -1. */
static inline int parse_list(const char *s, long long *arr, int max)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n >= max)
            return -1;
        long long v = parse_size(tok);
        if (v < 0)
            return -1;
        arr[n++] = v;
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts v in place). */
static inline double median(double *v, int n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return (n & 1) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Abort every rank with a message (from whichever rank found the problem). */
#define DIE(...)                                                                   \
    do {                                                                           \
        fprintf(stderr, __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                       \
        MPI_Abort(MPI_COMM_WORLD, 2);                                              \
        exit(2);                                                                   \
    } while (0)

/* Page-aligned, touched buffer. */
static inline char *alloc_buf(size_t n, int fill)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, n ? n : 1) != 0)
        DIE("out of memory allocating %zu bytes", n);
    memset(p, fill, n ? n : 1);
    return p;
}

#endif
