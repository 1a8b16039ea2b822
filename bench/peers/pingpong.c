/* OSU-style ping-pong between ranks 0 and 1 (osu_latency method).
 *
 * For each size (0, 1, 2, 4, ..., max; powers of two plus 0): `warmup`
 * untimed round trips, then `iters` timed round trips
 *   rank 0: Send(s) ; Recv(s)        rank 1: Recv(s) ; Send(s)
 * one-way latency = total time / iters / 2                      [µs]
 * bandwidth       = bytes / one-way latency  (bytes/µs = 10^6 B/s = MB/s)
 *
 * Iterations: `--iters` (default 10000) up to 8 KiB, then scaled by 8 KiB/size
 * with a floor of `--iters-min` (default 100); warm-up = iters/10 (>= 10),
 * or `--warmup N` for every size. `--rounds R` (default 1) repeats the whole
 * sweep R times (rounds outermost) and reports, per size, the median of its R
 * rounds (robust to a slow spell of a shared or virtual machine; R = 1 is plain
 * OSU).
 * Separate, page-aligned, pre-touched send and
 * receive buffers, reused across iterations (cache-hot, as OSU does).
 *
 * Output (rank 0, stdout): a table, or with --json
 *  {"impl":"MPICH 4.0.2","bench":"pingpong","rounds":1,"results":[
 *     {"bytes":0,"iters":10000,"latency_us":0.39,"bandwidth_MBps":0.0}, ...]}
 */
#include "common.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: pingpong [--json] [--iters N] [--iters-min N] [--warmup N]\n"
            "                [--rounds R] [--max-bytes SIZE]   (SIZE accepts K/M suffixes)\n");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);

    int json = 0;
    long long iters_small = 10000, iters_min = 100, warmup_fixed = -1;
    long long max_bytes = 4LL << 20, rounds = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--iters") && v) { iters_small = parse_size(v); i++; }
        else if (!strcmp(a, "--iters-min") && v) { iters_min = parse_size(v); i++; }
        else if (!strcmp(a, "--warmup") && v) { warmup_fixed = parse_size(v); i++; }
        else if (!strcmp(a, "--rounds") && v) { rounds = parse_size(v); i++; }
        else if (!strcmp(a, "--max-bytes") && v) { max_bytes = parse_size(v); i++; }
        else {
            if (rank == 0) usage();
            MPI_Finalize();
            return (!strcmp(a, "-h") || !strcmp(a, "--help")) ? 0 : 1;
        }
    }
    if (iters_small < 1 || iters_min < 1 || rounds < 1 || rounds > 1000 || max_bytes < 0 || (warmup_fixed < 0 && warmup_fixed != -1)) {
        if (rank == 0) usage();
        MPI_Finalize();
        return 1;
    }
    if (nranks < 2) DIE("pingpong: needs at least 2 ranks (got %d)", nranks);

    char impl[256];
    impl_name(impl, sizeof impl);

    char *sbuf = alloc_buf((size_t)max_bytes, 'a');
    char *rbuf = alloc_buf((size_t)max_bytes, 'b');
    const int peer = 1 - rank;

    if (rank == 0) {
        if (json)
            printf("{\"impl\":\"%s\",\"bench\":\"pingpong\",\"rounds\":%lld,\"results\":[", impl, rounds);
        else
            printf("# %s ping-pong, one-way latency = RTT/2\n# %10s %8s %12s %14s\n", impl,
                   "bytes", "iters", "latency_us", "bandwidth_MBps");
    }

    /* global warm-up: connection set-up, page faults, clock ramp (untimed) */
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank <= 1)
        for (int k = 0; k < 50000; k++) {
            if (rank == 0) {
                MPI_Send(sbuf, 0, MPI_CHAR, peer, 0, MPI_COMM_WORLD);
                MPI_Recv(rbuf, 0, MPI_CHAR, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else {
                MPI_Recv(rbuf, 0, MPI_CHAR, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(sbuf, 0, MPI_CHAR, peer, 0, MPI_COMM_WORLD);
            }
        }

    /* the size list: 0, 1, 2, 4, ..., max_bytes */
    long long sizes[64];
    int nsizes = 0;
    for (long long s = 0; s <= max_bytes && nsizes < 64; s = s ? 2 * s : 1) {
        sizes[nsizes++] = s;
        if (max_bytes == 0) break;
    }
    double *lat = malloc(sizeof(double) * (size_t)nsizes * (size_t)rounds);
    long long *iters_of = malloc(sizeof(long long) * (size_t)nsizes);
    if (!lat || !iters_of) DIE("out of memory");

    /* rounds outermost: the R samples of one size are spread over the whole run,
     * so that a slow spell of the (virtual) machine hits every size alike */
    for (long long rd = 0; rd < rounds; rd++) {
        for (int si = 0; si < nsizes; si++) {
            const long long s = sizes[si];
            long long iters = iters_small;
            if (s > 8192) {
                iters = iters_small * 8192 / s;
                if (iters < iters_min) iters = iters_min;
            }
            iters_of[si] = iters;
            const long long warm = warmup_fixed >= 0 ? warmup_fixed : (iters / 10 < 10 ? 10 : iters / 10);
            double t0 = 0.0, t1 = 0.0;
            MPI_Barrier(MPI_COMM_WORLD);
            if (rank <= 1) {
                for (long long k = 0; k < warm + iters; k++) {
                    if (k == warm) {
                        /* start both ranks' timed phase together */
                        if (rank == 0)
                            MPI_Recv(NULL, 0, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                        else
                            MPI_Send(NULL, 0, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
                        t0 = now_us();
                    }
                    if (rank == 0) {
                        MPI_Send(sbuf, (int)s, MPI_CHAR, peer, 0, MPI_COMM_WORLD);
                        MPI_Recv(rbuf, (int)s, MPI_CHAR, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    } else {
                        MPI_Recv(rbuf, (int)s, MPI_CHAR, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                        MPI_Send(sbuf, (int)s, MPI_CHAR, peer, 0, MPI_COMM_WORLD);
                    }
                }
                t1 = now_us();
            }
            lat[(size_t)si * rounds + rd] = (t1 - t0) / (double)iters / 2.0;
        }
    }
    if (rank == 0)
        for (int si = 0; si < nsizes; si++) {
            const long long s = sizes[si];
            const double l = median(lat + (size_t)si * rounds, (int)rounds);
            const double bw = s ? (double)s / l : 0.0;
            if (json)
                printf("%s{\"bytes\":%lld,\"iters\":%lld,\"latency_us\":%.4f,\"bandwidth_MBps\":%.1f}",
                       si ? "," : "", s, iters_of[si], l, bw);
            else
                printf("  %10lld %8lld %12.3f %14.1f\n", s, iters_of[si], l, bw);
        }
    free(lat);
    free(iters_of);
    if (rank == 0 && json) printf("]}\n");
    fflush(stdout);
    free(sbuf);
    free(rbuf);
    MPI_Finalize();
    return 0;
}
