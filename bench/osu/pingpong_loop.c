/* 8-byte ping-pong between ranks 0 and 1 timed over the whole loop (no MPI_Wtime per
 * iteration, unlike osu_latency), and the cost of one MPI_Wtime call: separates an MPI
 * library's call path from the benchmark's own timing.
 *
 * Build and run (BENCHMARKS.md, "Latency per size"):
 *   target/mpi/bin/mpicc -O2 -o /tmp/pp_tocsin bench/osu/pingpong_loop.c
 *   TOCSIN_PROGRESS=poll target/mpi/bin/mpiexec -n 2 /tmp/pp_tocsin
 *   mpicc.openmpi -O2 -o /tmp/pp_ompi bench/osu/pingpong_loop.c
 *   mpiexec.openmpi -n 2 --mca pml ob1 --mca btl self,vader --bind-to core \
 *       --allow-run-as-root /tmp/pp_ompi
 * Prints, for 3 repetitions: one-way latency in µs (round trips / 2) and MPI_Wtime in ns. */
#include <mpi.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int rank;
    char buf[8] = {0};
    const int iters = 2000000, warmup = 200000;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (int rep = 0; rep < 3; rep++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = 0, sink = 0;
        for (int i = 0; i < iters + warmup; i++) {
            if (i == warmup)
                t0 = now();
            if (rank == 0) {
                MPI_Send(buf, 8, MPI_CHAR, 1, 1, MPI_COMM_WORLD);
                MPI_Recv(buf, 8, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else if (rank == 1) {
                MPI_Recv(buf, 8, MPI_CHAR, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(buf, 8, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
            }
        }
        double t = now() - t0;
        double t1 = now();
        for (int i = 0; i < 1000000; i++)
            sink += MPI_Wtime();
        double wtime = (now() - t1) / 1e6;
        if (rank == 0)
            printf("8 B one-way %.3f us (whole-loop timing); MPI_Wtime %.1f ns%s\n",
                   t / iters / 2 * 1e6, wtime * 1e9, sink < 0 ? "" : "");
    }
    MPI_Finalize();
    return 0;
}
