/* Blocking collectives on 4 ranks, data checked byte for byte. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank, size, fails;
#define CHECK(c, ...) do { if (!(c)) { fails++; fprintf(stderr, "rank %d FAIL %s:%d: ", rank, __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)
#define OK(rc) CHECK((rc) == MPI_SUCCESS, "rc %d", rc)

/* non-commutative: 2x2 matrix product on 4 ints, inout = in * inout */
static void matmul(void *in, void *inout, int *len, MPI_Datatype *dt) {
    int *a = in, *b = inout;
    (void)dt;
    for (int i = 0; i < *len; i++, a += 4, b += 4) {
        int r[4] = {a[0]*b[0]+a[1]*b[2], a[0]*b[1]+a[1]*b[3], a[2]*b[0]+a[3]*b[2], a[2]*b[1]+a[3]*b[3]};
        memcpy(b, r, sizeof r);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    OK(MPI_Barrier(MPI_COMM_WORLD));

    /* Bcast small and >= 12 KiB, every root */
    for (int root = 0; root < size; root++) {
        int ns[2] = {7, 5000};
        for (int k = 0; k < 2; k++) {
            int n = ns[k];
            int *b = malloc(n * sizeof(int));
            for (int i = 0; i < n; i++) b[i] = rank == root ? i * 3 + root : -1;
            OK(MPI_Bcast(b, n, MPI_INT, root, MPI_COMM_WORLD));
            for (int i = 0; i < n; i++) CHECK(b[i] == i * 3 + root, "bcast n=%d root=%d b[%d]=%d", n, root, i, b[i]);
            free(b);
        }
    }
    /* Allreduce small and >= 64 KiB, in place too */
    {
        int ns[2] = {10, 40000};
        for (int k = 0; k < 2; k++) {
            int n = ns[k];
            double *s = malloc(n * sizeof(double)), *r = malloc(n * sizeof(double));
            for (int i = 0; i < n; i++) s[i] = rank + i;
            OK(MPI_Allreduce(s, r, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
            for (int i = 0; i < n; i++) CHECK(r[i] == 6 + 4.0 * i, "allreduce n=%d r[%d]=%g", n, i, r[i]);
            OK(MPI_Allreduce(MPI_IN_PLACE, s, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
            for (int i = 0; i < n; i++) CHECK(s[i] == 3 + i, "allreduce in place n=%d", n);
            free(s); free(r);
        }
    }
    /* MPI_CHAR with MPI_SUM */
    {
        char s[3] = {1, 2, (char)(10 * rank)}, r[3] = {0};
        OK(MPI_Allreduce(s, r, 3, MPI_CHAR, MPI_SUM, MPI_COMM_WORLD));
        CHECK(r[0] == 4 && r[1] == 8 && r[2] == 60, "char sum %d %d %d", r[0], r[1], r[2]);
    }
    /* Reduce to each root, in place at root; MINLOC on DOUBLE_INT */
    for (int root = 0; root < size; root++) {
        long s[4], r[4] = {0};
        for (int i = 0; i < 4; i++) s[i] = (rank + 1) * (i + 1);
        OK(MPI_Reduce(s, r, 4, MPI_LONG, MPI_PROD, root, MPI_COMM_WORLD));
        if (rank == root) for (int i = 0; i < 4; i++) { long e = 24; for (int j = 0; j < 3; j++) e *= i + 1; e *= i + 1; CHECK(r[i] == e, "reduce prod r[%d]=%ld e=%ld", i, r[i], e); }
        if (rank == root) { OK(MPI_Reduce(MPI_IN_PLACE, s, 4, MPI_LONG, MPI_SUM, root, MPI_COMM_WORLD)); for (int i = 0; i < 4; i++) CHECK(s[i] == 10 * (i + 1), "reduce in place"); }
        else OK(MPI_Reduce(s, NULL, 4, MPI_LONG, MPI_SUM, root, MPI_COMM_WORLD));
        struct { double v; int i; } p = {rank == 2 ? -1.0 : rank, rank}, q;
        OK(MPI_Reduce(&p, &q, 1, MPI_DOUBLE_INT, MPI_MINLOC, root, MPI_COMM_WORLD));
        if (rank == root) CHECK(q.v == -1.0 && q.i == 2, "minloc %g %d", q.v, q.i);
    }
    /* user op, non-commutative: product of matrices in rank order */
    {
        MPI_Op op; int commute = 1;
        OK(MPI_Op_create(matmul, 0, &op));
        OK(MPI_Op_commutative(op, &commute));
        CHECK(commute == 0, "commutative flag");
        int m[4] = {1, rank + 1, 0, 1}; /* upper triangular; product order matters with the next */
        int t[4] = {rank + 1, 0, 1, 1};
        int mm[8], r[8];
        memcpy(mm, m, sizeof m); memcpy(mm + 4, t, sizeof t);
        MPI_Datatype quad; OK(MPI_Type_contiguous(4, MPI_INT, &quad)); OK(MPI_Type_commit(&quad));
        OK(MPI_Allreduce(mm, r, 2, quad, op, MPI_COMM_WORLD));
        /* expected: M0*M1*M2*M3 computed locally */
        int e[8];
        for (int w = 0; w < 2; w++) {
            int acc[4] = {1, 0, 0, 1};
            for (int k = 0; k < size; k++) {
                int x[4] = {1, k + 1, 0, 1}, y[4] = {k + 1, 0, 1, 1};
                int *mk = w ? y : x; int len = 1;
                int tmp[4]; memcpy(tmp, mk, sizeof tmp);
                /* acc = acc * mk: inout = in * inout with in = acc, inout = mk */
                matmul(acc, tmp, &len, NULL); memcpy(acc, tmp, sizeof acc);
            }
            memcpy(e + 4 * w, acc, sizeof acc);
        }
        for (int i = 0; i < 8; i++) CHECK(r[i] == e[i], "user op r[%d]=%d e=%d", i, r[i], e[i]);
        /* Scan with the user op */
        OK(MPI_Scan(mm, r, 2, quad, op, MPI_COMM_WORLD));
        {
            int acc[4] = {1, 0, 0, 1};
            for (int k = 0; k <= rank; k++) { int x[4] = {1, k + 1, 0, 1}; int len = 1; matmul(acc, x, &len, NULL); memcpy(acc, x, sizeof acc); }
            for (int i = 0; i < 4; i++) CHECK(r[i] == acc[i], "user scan r[%d]=%d e=%d", i, r[i], acc[i]);
        }
        OK(MPI_Type_free(&quad));
        OK(MPI_Op_free(&op));
        CHECK(op == MPI_OP_NULL, "op null after free");
    }
    /* Scan / Exscan */
    {
        int s = rank + 1, r = -7;
        OK(MPI_Scan(&s, &r, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
        CHECK(r == (rank + 1) * (rank + 2) / 2, "scan %d", r);
        r = -7;
        OK(MPI_Exscan(&s, &r, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
        if (rank > 0) CHECK(r == rank * (rank + 1) / 2, "exscan %d", r);
        r = s;
        OK(MPI_Scan(MPI_IN_PLACE, &r, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
        CHECK(r == (rank + 1) * (rank + 2) / 2, "scan in place %d", r);
    }
    /* Gather / Gatherv / Scatter / Scatterv, each root, in place */
    for (int root = 0; root < size; root++) {
        int s[3] = {rank * 10, rank * 10 + 1, rank * 10 + 2}, r[12];
        memset(r, -1, sizeof r);
        OK(MPI_Gather(s, 3, MPI_INT, r, 3, MPI_INT, root, MPI_COMM_WORLD));
        if (rank == root) for (int i = 0; i < 12; i++) CHECK(r[i] == (i / 3) * 10 + i % 3, "gather r[%d]=%d", i, r[i]);
        if (rank == root) { memset(r, -1, sizeof r); memcpy(r + 3 * root, s, sizeof s);
            OK(MPI_Gather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r, 3, MPI_INT, root, MPI_COMM_WORLD));
            for (int i = 0; i < 12; i++) CHECK(r[i] == (i / 3) * 10 + i % 3, "gather in place r[%d]=%d", i, r[i]);
        } else OK(MPI_Gather(s, 3, MPI_INT, NULL, 0, MPI_DATATYPE_NULL, root, MPI_COMM_WORLD));
        /* scatter */
        int all[12], mine[3] = {-1, -1, -1};
        for (int i = 0; i < 12; i++) all[i] = 100 * root + i;
        OK(MPI_Scatter(all, 3, MPI_INT, mine, 3, MPI_INT, root, MPI_COMM_WORLD));
        for (int i = 0; i < 3; i++) CHECK(mine[i] == 100 * root + 3 * rank + i, "scatter");
        int sc[4] = {2, 1, 2, 1}, sd[4] = {5, 0, 1, 3}, v[2] = {-1, -1};
        OK(MPI_Scatterv(all, sc, sd, MPI_INT, v, sc[rank], MPI_INT, root, MPI_COMM_WORLD));
        for (int i = 0; i < sc[rank]; i++) CHECK(v[i] == 100 * root + sd[rank] + i, "scatterv");
        if (rank == root) OK(MPI_Scatter(all, 3, MPI_INT, MPI_IN_PLACE, 3, MPI_INT, root, MPI_COMM_WORLD));
        else { OK(MPI_Scatter(NULL, 3, MPI_INT, mine, 3, MPI_INT, root, MPI_COMM_WORLD)); for (int i = 0; i < 3; i++) CHECK(mine[i] == 100 * root + 3 * rank + i, "scatter in place"); }
    }
    /* Gatherv with checked placement (only counts <= 3 from our 3-int buffer) */
    {
        int s[3] = {rank * 10, rank * 10 + 1, rank * 10 + 2};
        int counts[4] = {1, 2, 3, 3}, displs[4] = {9, 6, 3, 0}, g[10];
        for (int i = 0; i < 10; i++) g[i] = -1;
        OK(MPI_Gatherv(s, counts[rank], MPI_INT, g, counts, displs, MPI_INT, 0, MPI_COMM_WORLD));
        if (rank == 0) {
            int e[10] = {30, 31, 32, 20, 21, 22, 10, 11, -1, 0};
            for (int i = 0; i < 10; i++) CHECK(g[i] == e[i], "gatherv g[%d]=%d e=%d", i, g[i], e[i]);
        }
    }
    /* Allgather(v), in place */
    {
        int s[2] = {rank, -rank}, r[8];
        OK(MPI_Allgather(s, 2, MPI_INT, r, 2, MPI_INT, MPI_COMM_WORLD));
        for (int i = 0; i < 8; i++) CHECK(r[i] == (i % 2 ? -(i / 2) : i / 2), "allgather");
        memset(r, 0, sizeof r); r[2 * rank] = rank; r[2 * rank + 1] = -rank;
        OK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r, 2, MPI_INT, MPI_COMM_WORLD));
        for (int i = 0; i < 8; i++) CHECK(r[i] == (i % 2 ? -(i / 2) : i / 2), "allgather in place");
        int counts[4] = {1, 2, 1, 2}, displs[4] = {0, 1, 3, 4}, v[6];
        OK(MPI_Allgatherv(s, counts[rank], MPI_INT, v, counts, displs, MPI_INT, MPI_COMM_WORLD));
        int e[6] = {0, 1, -1, 2, 3, -3};
        for (int i = 0; i < 6; i++) CHECK(v[i] == e[i], "allgatherv v[%d]=%d", i, v[i]);
    }
    /* Alltoall(v), in place */
    {
        int s[8], r[8];
        for (int i = 0; i < 8; i++) s[i] = 100 * rank + i;
        OK(MPI_Alltoall(s, 2, MPI_INT, r, 2, MPI_INT, MPI_COMM_WORLD));
        for (int j = 0; j < 4; j++) for (int k = 0; k < 2; k++) CHECK(r[2 * j + k] == 100 * j + 2 * rank + k, "alltoall");
        memcpy(r, s, sizeof r);
        OK(MPI_Alltoall(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r, 2, MPI_INT, MPI_COMM_WORLD));
        for (int j = 0; j < 4; j++) for (int k = 0; k < 2; k++) CHECK(r[2 * j + k] == 100 * j + 2 * rank + k, "alltoall in place");
        /* v: rank i sends (j+1) ints to rank j */
        int sc[4], sd[4], rc[4], rd[4], sb[10], rb[16];
        for (int j = 0, o = 0; j < 4; j++) { sc[j] = j + 1; sd[j] = o; o += j + 1; }
        for (int j = 0; j < 4; j++) { rc[j] = rank + 1; rd[j] = 4 * j; }
        for (int i = 0; i < 10; i++) sb[i] = 1000 * rank + i;
        for (int i = 0; i < 16; i++) rb[i] = -1;
        OK(MPI_Alltoallv(sb, sc, sd, MPI_INT, rb, rc, rd, MPI_INT, MPI_COMM_WORLD));
        for (int j = 0; j < 4; j++) for (int k = 0; k < 4; k++) {
            int e = k <= rank ? 1000 * j + rank * (rank + 1) / 2 + k : -1;
            CHECK(rb[4 * j + k] == e, "alltoallv rb[%d]=%d e=%d", 4 * j + k, rb[4 * j + k], e);
        }
    }
    /* Reduce_scatter(_block), in place */
    {
        int s[8], r[3];
        for (int i = 0; i < 8; i++) s[i] = rank + i;
        OK(MPI_Reduce_scatter_block(s, r, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
        for (int k = 0; k < 2; k++) CHECK(r[k] == 6 + 4 * (2 * rank + k), "reduce_scatter_block");
        int counts[4] = {1, 3, 2, 2}, off[4] = {0, 1, 4, 6};
        OK(MPI_Reduce_scatter(s, r, counts, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
        for (int k = 0; k < counts[rank]; k++) CHECK(r[k] == 6 + 4 * (off[rank] + k), "reduce_scatter");
        OK(MPI_Reduce_scatter_block(MPI_IN_PLACE, s, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
        for (int k = 0; k < 2; k++) CHECK(s[k] == 6 + 4 * (2 * rank + k), "reduce_scatter_block in place");
    }
    /* Derived datatypes: vector in Bcast and Gather; resized vector column */
    {
        double m[4][5];
        for (int i = 0; i < 4; i++) for (int j = 0; j < 5; j++) m[i][j] = rank == 1 ? 10 * i + j : -1;
        MPI_Datatype col; OK(MPI_Type_vector(4, 1, 5, MPI_DOUBLE, &col)); OK(MPI_Type_commit(&col));
        OK(MPI_Bcast(&m[0][2], 1, col, 1, MPI_COMM_WORLD));
        for (int i = 0; i < 4; i++) for (int j = 0; j < 5; j++) CHECK(m[i][j] == (rank == 1 || j == 2 ? 10 * i + j : -1), "vector bcast m[%d][%d]=%g", i, j, m[i][j]);
        /* gather: each rank sends 4 contiguous doubles, root receives them as column r */
        double mine[4], g[4][5];
        for (int i = 0; i < 4; i++) mine[i] = 100 * rank + i;
        for (int i = 0; i < 4; i++) for (int j = 0; j < 5; j++) g[i][j] = -1;
        MPI_Datatype colr; OK(MPI_Type_create_resized(col, 0, sizeof(double), &colr)); OK(MPI_Type_commit(&colr));
        OK(MPI_Gather(mine, 4, MPI_DOUBLE, g, 1, colr, 0, MPI_COMM_WORLD));
        if (rank == 0) for (int i = 0; i < 4; i++) for (int j = 0; j < 5; j++) CHECK(g[i][j] == (j < 4 ? 100 * j + i : -1), "vector gather g[%d][%d]=%g", i, j, g[i][j]);
        /* and send the column as the send type of an allgather into contiguous doubles */
        double all[16];
        for (int i = 0; i < 4; i++) for (int j = 0; j < 5; j++) m[i][j] = 10 * rank + i;
        OK(MPI_Allgather(&m[0][0], 1, col, all, 4, MPI_DOUBLE, MPI_COMM_WORLD));
        for (int i = 0; i < 16; i++) CHECK(all[i] == 10 * (i / 4) + i % 4, "vector allgather all[%d]=%g", i, all[i]);
        OK(MPI_Type_free(&colr)); OK(MPI_Type_free(&col));
    }
    /* Reduce_local */
    {
        int a[3] = {1, 2, 3}, b[3] = {10, 20, 30};
        OK(MPI_Reduce_local(a, b, 3, MPI_INT, MPI_SUM));
        CHECK(b[0] == 11 && b[1] == 22 && b[2] == 33, "reduce_local");
    }
    int total;
    MPI_Allreduce(&fails, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0 && total == 0) printf("coll: all checks passed\n");
    MPI_Finalize();
    return total != 0;
}
