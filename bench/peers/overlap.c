/* Overlap of communication and computation, MadMPI-benchmark method
 * (A. Denis, F. Trahay, "MPI Overlap: Benchmark and Analysis", ICPP 2016;
 *  the benchmarks mpi_bench_overlap_sender / mpi_bench_overlap_recv).
 *
 * Two sides, on ranks 0 and 1:
 *  sender side   : rank 0 computes:  t1; Isend(s); compute(t); Wait; Recv(ack,0 B); t2
 *                  rank 1 waits:     Recv(s); Send(ack,0 B)
 *  receiver side : rank 1 computes:  t1; Irecv(s); Send(go,0 B); compute(t); Wait; t2
 *                  rank 0 waits:     Recv(go,0 B); Send(s)
 * Before each timed iteration the waiting rank sends a 0-byte "ready" message
 * to the computing rank, which starts its clock only after receiving it, so
 * that the waiting rank is (about) inside its blocking call when timing starts
 * (the per-iteration barrier of MadMPI-benchmark). The receiver side posts the
 * Irecv before releasing the sender with "go", so the data always arrives while
 * the receiver computes (MadMPI sends go first and posts the Irecv just after).
 * The 0-byte control message inside the timed region (ack or go) is removed:
 * lat0 = median one-way latency of a 0-byte ping-pong, measured at start-up,
 * is subtracted from every measured time (MadMPI does the same with its
 * calibrated "ACK latency").
 *
 * For each size s and compute time t (t = 0 is the reference):
 *   T_comm  = median_reps( time(s, 0) ) - lat0          (transfer alone)
 *   T_comp  = t                                         (calibrated busy loop)
 *   T_total = median_reps( time(s, t) ) - lat0          (Isend/Irecv + compute + Wait)
 *   overlap = (T_comm + T_comp - T_total) / min(T_comm, T_comp)
 * clamped to [0, 1] and reported as a percentage. 100% = the transfer was
 * entirely hidden behind the computation (T_total = max(T_comm, T_comp)); 0% =
 * it was serialized (T_total = T_comm + T_comp). This is 1 minus the
 * "overhead ratio" plotted by MadMPI-benchmark (mpibenchmark/plot/trace-overlap.gp:
 * ov = (c < ref) ? (l - ref)/c : (l - c)/ref, l = rtt - lat0), i.e. the ICPP 2016
 * definition.
 *
 * Order: as in MadMPI-benchmark, the repetitions of one (size, t) run back to
 * back after `--warmup` untimed ones (for size: for t: warmup; reps).
 * `--interleave` runs for rep: for t: instead. On the 2-vCPU KVM guest this
 * matters: a transfer that follows a long (ms) compute phase is up to 2x slower
 * (e.g. 4 MiB t=0 after t=5000: ~650 us instead of ~300 us), so interleaving
 * inflates the t = 0 reference (T_comm) and the overlap of small t.
 *
 * compute(t) spins on clock_gettime(CLOCK_MONOTONIC) until t µs have elapsed:
 * no MPI call, no memory traffic, so it neither progresses nor disturbs the
 * network.
 *
 * Output (rank 0, stdout): a table, or with --json
 *  {"impl":"...","bench":"overlap","lat0_us":0.2,"reps":20,"results":[
 *    {"side":"sender","bytes":1048576,"compute_us":200,"comm_us":..,"total_us":..,
 *     "overlap_pct":..}, ...]}
 * (one row per side, size and t > 0; comm_us is the t = 0 reference.)
 */
#include "common.h"

#define TAG_DATA 0
#define TAG_CTRL 1
#define MAXL 64

static void compute(double t_us)
{
    if (t_us <= 0.0) return;
    const double end = now_us() + t_us;
    while (now_us() < end) { }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: overlap [--json] [--sizes LIST] [--compute LIST] [--reps N]\n"
            "               [--warmup N] [--side sender|receiver|both] [--interleave]\n"
            "  LIST: comma-separated; sizes accept K/M suffixes (binary)\n"
            "  defaults: --sizes 32K,256K,1M,4M,16M --compute 0,10,50,200,1000,5000\n"
            "            --reps 20 --warmup 3 --side both\n"
            "  --interleave: for rep { for t } instead of for t { warmup; for rep }\n");
}

/* One timed iteration on the computing rank, or the matching part on the peer.
 * Returns the measured time (µs) on the computing rank, 0 elsewhere. */
static double one_iter(int sender_side, int rank, char *buf, int s, double t)
{
    const int computing = sender_side ? 0 : 1;
    const int peer = 1 - rank;
    if (rank == computing) {
        MPI_Request req;
        MPI_Recv(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD, MPI_STATUS_IGNORE); /* ready */
        double t1 = now_us();
        if (sender_side) {
            MPI_Isend(buf, s, MPI_CHAR, peer, TAG_DATA, MPI_COMM_WORLD, &req);
            compute(t);
            MPI_Wait(&req, MPI_STATUS_IGNORE);
            MPI_Recv(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD, MPI_STATUS_IGNORE); /* ack */
        } else {
            MPI_Irecv(buf, s, MPI_CHAR, peer, TAG_DATA, MPI_COMM_WORLD, &req);
            MPI_Send(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD); /* go */
            compute(t);
            MPI_Wait(&req, MPI_STATUS_IGNORE);
        }
        return now_us() - t1;
    } else {
        MPI_Send(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD); /* ready */
        if (sender_side) {
            MPI_Recv(buf, s, MPI_CHAR, peer, TAG_DATA, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD); /* ack */
        } else {
            MPI_Recv(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD, MPI_STATUS_IGNORE); /* go */
            MPI_Send(buf, s, MPI_CHAR, peer, TAG_DATA, MPI_COMM_WORLD);
        }
        return 0.0;
    }
}

/* Median one-way latency of a 0-byte ping-pong on the control tag. */
static double calibrate_lat0(int rank)
{
    enum { N = 2000, WARM = 200 };
    static double v[N];
    const int peer = 1 - rank;
    for (int k = 0; k < WARM + N; k++) {
        double t1 = now_us();
        if (rank == 0) {
            MPI_Send(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD);
            MPI_Recv(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(NULL, 0, MPI_CHAR, peer, TAG_CTRL, MPI_COMM_WORLD);
        }
        if (k >= WARM) v[k - WARM] = (now_us() - t1) / 2.0;
    }
    double m = median(v, N);
    MPI_Bcast(&m, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return m;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);

    int json = 0, reps = 20, warmup = 3, do_sender = 1, do_receiver = 1, interleave = 0;
    long long sizes[MAXL] = {32LL << 10, 256LL << 10, 1LL << 20, 4LL << 20, 16LL << 20};
    int nsizes = 5;
    long long comps[MAXL] = {0, 10, 50, 200, 1000, 5000};
    int ncomps = 6;
    int bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--sizes") && v) { nsizes = parse_list(v, sizes, MAXL); bad = nsizes <= 0; i++; }
        else if (!strcmp(a, "--compute") && v) { ncomps = parse_list(v, comps, MAXL - 1); bad = ncomps <= 0; i++; }
        else if (!strcmp(a, "--reps") && v) { reps = atoi(v); bad = reps < 1; i++; }
        else if (!strcmp(a, "--interleave")) interleave = 1;
        else if (!strcmp(a, "--warmup") && v) { warmup = atoi(v); bad = warmup < 0; i++; }
        else if (!strcmp(a, "--side") && v) {
            do_sender = !strcmp(v, "sender") || !strcmp(v, "both");
            do_receiver = !strcmp(v, "receiver") || !strcmp(v, "both");
            bad = !do_sender && !do_receiver;
            i++;
        } else bad = 1;
    }
    if (bad) {
        if (rank == 0) usage();
        MPI_Finalize();
        return 1;
    }
    if (nranks != 2) DIE("overlap: needs exactly 2 ranks (got %d)", nranks);
    /* make sure t = 0 (the reference) is in the grid, at index 0 */
    {
        int has0 = -1;
        for (int j = 0; j < ncomps; j++) if (comps[j] == 0) has0 = j;
        if (has0 < 0) { memmove(comps + 1, comps, (size_t)ncomps * sizeof *comps); comps[0] = 0; ncomps++; }
        else { long long tmp = comps[0]; comps[0] = 0; comps[has0] = tmp; }
    }
    long long maxs = 0;
    for (int i = 0; i < nsizes; i++) {
        if (sizes[i] > 0x7fffffffLL) DIE("overlap: size %lld too large", sizes[i]);
        if (sizes[i] > maxs) maxs = sizes[i];
    }

    char impl[256];
    impl_name(impl, sizeof impl);
    char *buf = alloc_buf((size_t)maxs, rank ? 'r' : 's');
    double *samples = malloc(sizeof(double) * (size_t)reps * (size_t)ncomps);
    double *med = malloc(sizeof(double) * (size_t)ncomps);
    double *tmp = malloc(sizeof(double) * (size_t)reps);
    if (!samples || !med || !tmp) DIE("out of memory");

    double lat0 = calibrate_lat0(rank);

    if (rank == 0) {
        if (json)
            printf("{\"impl\":\"%s\",\"bench\":\"overlap\",\"lat0_us\":%.4f,\"reps\":%d,\"results\":[",
                   impl, lat0, reps);
        else
            printf("# %s overlap (MadMPI-benchmark method), lat0 = %.3f us, median of %d reps\n"
                   "# %-8s %10s %10s %10s %10s %8s\n",
                   impl, lat0, reps, "side", "bytes", "compute_us", "comm_us", "total_us", "overlap%");
    }
    int first = 1;
    for (int side = 0; side < 2; side++) {
        const int sender_side = (side == 0);
        if (sender_side ? !do_sender : !do_receiver) continue;
        const int computing = sender_side ? 0 : 1;
        for (int si = 0; si < nsizes; si++) {
            const int s = (int)sizes[si];
            MPI_Barrier(MPI_COMM_WORLD);
            if (interleave) {
                for (int w = 0; w < warmup; w++)
                    for (int j = 0; j < ncomps; j++)
                        one_iter(sender_side, rank, buf, s, (double)comps[j]);
                for (int r = 0; r < reps; r++)
                    for (int j = 0; j < ncomps; j++)
                        samples[(size_t)j * reps + r] = one_iter(sender_side, rank, buf, s, (double)comps[j]);
            } else {
                for (int j = 0; j < ncomps; j++) {
                    for (int w = 0; w < warmup; w++)
                        one_iter(sender_side, rank, buf, s, (double)comps[j]);
                    for (int r = 0; r < reps; r++)
                        samples[(size_t)j * reps + r] = one_iter(sender_side, rank, buf, s, (double)comps[j]);
                }
            }
            if (rank == computing)
                for (int j = 0; j < ncomps; j++) {
                    memcpy(tmp, samples + (size_t)j * reps, sizeof(double) * (size_t)reps);
                    med[j] = median(tmp, reps) - lat0;
                    if (med[j] < 0.0) med[j] = 0.0;
                }
            if (computing != 0) {
                if (rank == computing)
                    MPI_Send(med, ncomps, MPI_DOUBLE, 0, TAG_CTRL, MPI_COMM_WORLD);
                else if (rank == 0)
                    MPI_Recv(med, ncomps, MPI_DOUBLE, computing, TAG_CTRL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            }
            if (rank == 0) {
                const double comm = med[0];
                for (int j = 1; j < ncomps; j++) {
                    const double comp = (double)comps[j], total = med[j];
                    const double mn = comm < comp ? comm : comp;
                    double ov = mn > 0.0 ? (comm + comp - total) / mn : 0.0;
                    if (ov < 0.0) ov = 0.0;
                    if (ov > 1.0) ov = 1.0;
                    const char *sname = sender_side ? "sender" : "receiver";
                    if (json)
                        printf("%s{\"side\":\"%s\",\"bytes\":%d,\"compute_us\":%lld,\"comm_us\":%.3f,"
                               "\"total_us\":%.3f,\"overlap_pct\":%.1f}",
                               first ? "" : ",", sname, s, comps[j], comm, total, 100.0 * ov);
                    else
                        printf("  %-8s %10d %10lld %10.2f %10.2f %8.1f\n", sname, s, comps[j], comm,
                               total, 100.0 * ov);
                    first = 0;
                }
                fflush(stdout);
            }
        }
    }
    if (rank == 0 && json) printf("]}\n");
    fflush(stdout);
    free(buf);
    free(samples);
    free(med);
    free(tmp);
    MPI_Finalize();
    return 0;
}
