/* CPU consumed by a rank blocked in a receive.
 *
 * Repeated `--reps` times (default 5), after an MPI_Barrier:
 *   rank 0: nanosleep(--sleep-ms, default 200 ms); MPI_Send(8 bytes)
 *   rank 1: MPI_Recv(8 bytes), measuring around the call
 *     wall_ms : CLOCK_MONOTONIC
 *     cpu_ms  : CLOCK_PROCESS_CPUTIME_ID (every thread of the process, so a
 *               library helper/progress thread is counted too)
 *     user_ms, sys_ms : getrusage(RUSAGE_SELF) split of the same (tick-grained
 *               on some kernels; cpu_ms is the precise figure)
 *     cpu_pct : 100 * cpu_ms / wall_ms
 * A library that busy-polls shows cpu_pct ~ 100; one that blocks in the kernel
 * shows ~ 0.
 *
 * Output (rank 0, stdout): a table, or with --json
 *  {"impl":"...","bench":"idle","sleep_ms":200,"results":[
 *     {"wall_ms":200.1,"cpu_ms":200.0,"user_ms":..,"sys_ms":..,"cpu_pct":99.9}, ...]}
 */
#include "common.h"
#include <sys/resource.h>

static double ru_ms(const struct timeval *tv)
{
    return (double)tv->tv_sec * 1e3 + (double)tv->tv_usec * 1e-3;
}

static void usage(void)
{
    fprintf(stderr, "usage: idle [--json] [--reps N] [--sleep-ms MS]\n");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);

    int json = 0, reps = 5, bad = 0;
    long sleep_ms = 200;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--reps") && v) { reps = atoi(v); bad = reps < 1 || reps > 1000; i++; }
        else if (!strcmp(a, "--sleep-ms") && v) { sleep_ms = atol(v); bad = sleep_ms < 0; i++; }
        else bad = 1;
    }
    if (bad) {
        if (rank == 0) usage();
        MPI_Finalize();
        return 1;
    }
    if (nranks != 2) DIE("idle: needs exactly 2 ranks (got %d)", nranks);

    char impl[256];
    impl_name(impl, sizeof impl);
    double res[1000][4]; /* wall, cpu, user, sys */
    char msg[8] = "tocsin!";

    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 0) {
            struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) { }
            MPI_Send(msg, 8, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
        } else {
            struct rusage ru0, ru1;
            getrusage(RUSAGE_SELF, &ru0);
            const double c0 = cpu_us(), w0 = now_us();
            MPI_Recv(msg, 8, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            const double w1 = now_us(), c1 = cpu_us();
            getrusage(RUSAGE_SELF, &ru1);
            res[r][0] = (w1 - w0) * 1e-3;
            res[r][1] = (c1 - c0) * 1e-3;
            res[r][2] = ru_ms(&ru1.ru_utime) - ru_ms(&ru0.ru_utime);
            res[r][3] = ru_ms(&ru1.ru_stime) - ru_ms(&ru0.ru_stime);
        }
    }
    if (rank == 1)
        MPI_Send(res, 4 * reps, MPI_DOUBLE, 0, 1, MPI_COMM_WORLD);
    else {
        MPI_Recv(res, 4 * reps, MPI_DOUBLE, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (json)
            printf("{\"impl\":\"%s\",\"bench\":\"idle\",\"sleep_ms\":%ld,\"results\":[", impl, sleep_ms);
        else
            printf("# %s: rank 1 blocked in MPI_Recv while rank 0 sleeps %ld ms\n"
                   "# %10s %10s %10s %10s %8s\n",
                   impl, sleep_ms, "wall_ms", "cpu_ms", "user_ms", "sys_ms", "cpu_pct");
        for (int r = 0; r < reps; r++) {
            const double pct = res[r][0] > 0 ? 100.0 * res[r][1] / res[r][0] : 0.0;
            if (json)
                printf("%s{\"wall_ms\":%.3f,\"cpu_ms\":%.3f,\"user_ms\":%.3f,\"sys_ms\":%.3f,\"cpu_pct\":%.1f}",
                       r ? "," : "", res[r][0], res[r][1], res[r][2], res[r][3], pct);
            else
                printf("  %10.3f %10.3f %10.3f %10.3f %8.1f\n", res[r][0], res[r][1], res[r][2],
                       res[r][3], pct);
        }
        if (json) printf("]}\n");
        fflush(stdout);
    }
    MPI_Finalize();
    return 0;
}
