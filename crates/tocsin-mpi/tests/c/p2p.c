/* Point-to-point on 2 ranks: data, statuses, wildcards, PROC_NULL, nonblocking and
 * persistent requests, probes, Sendrecv, buffered sends, truncation, cancel. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank;
#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "rank %d: %s:%d: CHECK failed: %s\n", rank, __FILE__,    \
                    __LINE__, #c);                                                   \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)
#define OK(call) CHECK((call) == MPI_SUCCESS)

int main(int argc, char **argv) {
    int size, i, count, flag, idx;
    MPI_Status st;
    OK(MPI_Init(&argc, &argv));
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    CHECK(size == 2);
    int peer = 1 - rank;

    /* 1. contiguous blocking, status, Get_count */
    {
        int buf[100];
        if (rank == 0) {
            for (i = 0; i < 100; i++) buf[i] = i * 7 + 1;
            OK(MPI_Send(buf, 100, MPI_INT, 1, 5, MPI_COMM_WORLD));
        } else {
            memset(buf, 0, sizeof buf);
            OK(MPI_Recv(buf, 100, MPI_INT, 0, 5, MPI_COMM_WORLD, &st));
            for (i = 0; i < 100; i++) CHECK(buf[i] == i * 7 + 1);
            CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 5);
            OK(MPI_Get_count(&st, MPI_INT, &count));
            CHECK(count == 100);
            OK(MPI_Get_count(&st, MPI_DOUBLE, &count));
            CHECK(count == 50);
            OK(MPI_Get_elements(&st, MPI_INT, &count));
            CHECK(count == 100);
            OK(MPI_Get_count(&st, MPI_SHORT_INT, &count)); /* 400 bytes / 6 */
            CHECK(count == MPI_UNDEFINED);
        }
    }
    /* 2. wildcards, shorter message than buffer */
    {
        double d[10] = {0};
        if (rank == 0) {
            double s[3] = {1.5, 2.5, 3.5};
            OK(MPI_Send(s, 3, MPI_DOUBLE, 1, 42, MPI_COMM_WORLD));
        } else {
            OK(MPI_Recv(d, 10, MPI_DOUBLE, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
            CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 42);
            OK(MPI_Get_count(&st, MPI_DOUBLE, &count));
            CHECK(count == 3 && d[0] == 1.5 && d[2] == 3.5 && d[3] == 0.0);
        }
    }
    /* 3. PROC_NULL */
    {
        int x = 3;
        OK(MPI_Send(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD));
        st.MPI_SOURCE = 77;
        OK(MPI_Recv(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD, &st));
        CHECK(st.MPI_SOURCE == MPI_PROC_NULL && st.MPI_TAG == MPI_ANY_TAG);
        OK(MPI_Get_count(&st, MPI_INT, &count));
        CHECK(count == 0 && x == 3);
        MPI_Request r;
        OK(MPI_Irecv(&x, 1, MPI_INT, MPI_PROC_NULL, 0, MPI_COMM_WORLD, &r));
        OK(MPI_Wait(&r, &st));
        CHECK(r == MPI_REQUEST_NULL && st.MPI_SOURCE == MPI_PROC_NULL);
        OK(MPI_Probe(MPI_PROC_NULL, 0, MPI_COMM_WORLD, &st));
        CHECK(st.MPI_SOURCE == MPI_PROC_NULL);
    }
    /* 4. non-contiguous predefined type (MPI_SHORT_INT: 6 bytes of data, extent 8) */
    {
        struct { short s; int i; } a[4];
        if (rank == 0) {
            for (i = 0; i < 4; i++) { a[i].s = (short)(i + 10); a[i].i = i * 1000; }
            OK(MPI_Send(a, 4, MPI_SHORT_INT, 1, 1, MPI_COMM_WORLD));
            MPI_Request r;
            OK(MPI_Isend(a, 4, MPI_SHORT_INT, 1, 2, MPI_COMM_WORLD, &r));
            OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        } else {
            memset(a, 0, sizeof a);
            OK(MPI_Recv(a, 4, MPI_SHORT_INT, 0, 1, MPI_COMM_WORLD, &st));
            for (i = 0; i < 4; i++) CHECK(a[i].s == i + 10 && a[i].i == i * 1000);
            OK(MPI_Get_count(&st, MPI_SHORT_INT, &count));
            CHECK(count == 4);
            memset(a, 0, sizeof a);
            MPI_Request r;
            OK(MPI_Irecv(a, 4, MPI_SHORT_INT, 0, 2, MPI_COMM_WORLD, &r));
            OK(MPI_Wait(&r, &st));
            for (i = 0; i < 4; i++) CHECK(a[i].s == i + 10 && a[i].i == i * 1000);
        }
    }
    /* 5. derived vector type if the datatype constructors are available */
    {
        MPI_Datatype vec;
        if (MPI_Type_vector(4, 2, 3, MPI_INT, &vec) == MPI_SUCCESS) {
            OK(MPI_Type_commit(&vec));
            int m[12], c[8];
            if (rank == 0) {
                for (i = 0; i < 12; i++) m[i] = i;
                OK(MPI_Send(m, 1, vec, 1, 3, MPI_COMM_WORLD));
                for (i = 0; i < 8; i++) c[i] = 100 + i;
                OK(MPI_Send(c, 8, MPI_INT, 1, 4, MPI_COMM_WORLD));
            } else {
                int want[8] = {0, 1, 3, 4, 6, 7, 9, 10};
                OK(MPI_Recv(c, 8, MPI_INT, 0, 3, MPI_COMM_WORLD, &st));
                for (i = 0; i < 8; i++) CHECK(c[i] == want[i]);
                for (i = 0; i < 12; i++) m[i] = -1;
                MPI_Request r;
                OK(MPI_Irecv(m, 1, vec, 0, 4, MPI_COMM_WORLD, &r));
                OK(MPI_Wait(&r, &st));
                for (i = 0; i < 8; i++) CHECK(m[want[i]] == 100 + i);
                CHECK(m[2] == -1 && m[5] == -1 && m[8] == -1 && m[11] == -1);
                OK(MPI_Get_elements(&st, vec, &count));
                CHECK(count == 8);
            }
            OK(MPI_Type_free(&vec));
            if (rank == 1) printf("vector: tested\n");
        } else if (rank == 1) {
            printf("vector: skipped (no MPI_Type_vector)\n");
        }
    }
    /* 6. nonblocking: Waitall, Waitany, Waitsome, Testall */
    {
        enum { N = 8, L = 5000 };
        static int sb[N][L], rb[N][L];
        MPI_Request rq[N];
        MPI_Status sts[N];
        for (int k = 0; k < N; k++)
            for (i = 0; i < L; i++) sb[k][i] = rank * 1000000 + k * L + i;
        /* Waitall: exchange N messages both ways */
        for (int k = 0; k < N; k++)
            OK(MPI_Irecv(rb[k], L, MPI_INT, peer, 100 + k, MPI_COMM_WORLD, &rq[k]));
        MPI_Request sq[N];
        for (int k = N - 1; k >= 0; k--)
            OK(MPI_Isend(sb[k], L, MPI_INT, peer, 100 + k, MPI_COMM_WORLD, &sq[k]));
        OK(MPI_Waitall(N, rq, sts));
        OK(MPI_Waitall(N, sq, MPI_STATUSES_IGNORE));
        for (int k = 0; k < N; k++) {
            CHECK(rq[k] == MPI_REQUEST_NULL && sq[k] == MPI_REQUEST_NULL);
            CHECK(sts[k].MPI_SOURCE == peer && sts[k].MPI_TAG == 100 + k);
            for (i = 0; i < L; i++) CHECK(rb[k][i] == peer * 1000000 + k * L + i);
        }
        /* Waitany over receives */
        for (int k = 0; k < N; k++)
            OK(MPI_Irecv(rb[k], L, MPI_INT, peer, 200 + k, MPI_COMM_WORLD, &rq[k]));
        for (int k = 0; k < N; k++)
            OK(MPI_Send(sb[k], L, MPI_INT, peer, 200 + k, MPI_COMM_WORLD));
        int seen = 0;
        for (int k = 0; k < N; k++) {
            OK(MPI_Waitany(N, rq, &idx, &st));
            CHECK(idx >= 0 && idx < N && !(seen & (1 << idx)));
            seen |= 1 << idx;
            CHECK(st.MPI_TAG == 200 + idx && rb[idx][7] == peer * 1000000 + idx * L + 7);
        }
        OK(MPI_Waitany(N, rq, &idx, &st));
        CHECK(idx == MPI_UNDEFINED);
        /* Waitsome */
        for (int k = 0; k < N; k++)
            OK(MPI_Irecv(rb[k], L, MPI_INT, peer, 300 + k, MPI_COMM_WORLD, &rq[k]));
        for (int k = 0; k < N; k++)
            OK(MPI_Send(sb[k], L, MPI_INT, peer, 300 + k, MPI_COMM_WORLD));
        int done = 0, outc, ind[N];
        while (done < N) {
            OK(MPI_Waitsome(N, rq, &outc, ind, sts));
            CHECK(outc >= 1);
            for (i = 0; i < outc; i++) CHECK(sts[i].MPI_TAG == 300 + ind[i]);
            done += outc;
        }
        OK(MPI_Waitsome(N, rq, &outc, ind, sts));
        CHECK(outc == MPI_UNDEFINED);
        /* Testall / Test / Testany */
        int v = 0, w = rank + 50;
        MPI_Request two[2];
        OK(MPI_Irecv(&v, 1, MPI_INT, peer, 400, MPI_COMM_WORLD, &two[0]));
        OK(MPI_Isend(&w, 1, MPI_INT, peer, 400, MPI_COMM_WORLD, &two[1]));
        flag = 0;
        while (!flag) OK(MPI_Testall(2, two, &flag, sts));
        CHECK(v == peer + 50 && two[0] == MPI_REQUEST_NULL && two[1] == MPI_REQUEST_NULL);
        OK(MPI_Testany(2, two, &idx, &flag, &st));
        CHECK(flag && idx == MPI_UNDEFINED);
        OK(MPI_Test(&two[0], &flag, &st));
        CHECK(flag);
    }
    /* 7. persistent requests */
    {
        int v[4], s[4];
        MPI_Request pr[2];
        OK(MPI_Recv_init(v, 4, MPI_INT, peer, 500, MPI_COMM_WORLD, &pr[0]));
        OK(MPI_Send_init(s, 4, MPI_INT, peer, 500, MPI_COMM_WORLD, &pr[1]));
        for (int it = 0; it < 3; it++) {
            for (i = 0; i < 4; i++) s[i] = rank * 100 + it * 10 + i;
            OK(MPI_Startall(2, pr));
            OK(MPI_Waitall(2, pr, MPI_STATUSES_IGNORE));
            CHECK(pr[0] != MPI_REQUEST_NULL && pr[1] != MPI_REQUEST_NULL);
            for (i = 0; i < 4; i++) CHECK(v[i] == peer * 100 + it * 10 + i);
        }
        /* an inactive persistent request waits at once with an empty status */
        OK(MPI_Wait(&pr[0], &st));
        CHECK(st.MPI_SOURCE == MPI_ANY_SOURCE && st.MPI_TAG == MPI_ANY_TAG);
        OK(MPI_Start(&pr[0]));
        OK(MPI_Ssend(s, 4, MPI_INT, peer, 500, MPI_COMM_WORLD));
        flag = 0;
        while (!flag) OK(MPI_Test(&pr[0], &flag, &st));
        CHECK(st.MPI_SOURCE == peer && v[3] == peer * 100 + 23);
        OK(MPI_Request_free(&pr[0]));
        OK(MPI_Request_free(&pr[1]));
        CHECK(pr[0] == MPI_REQUEST_NULL && pr[1] == MPI_REQUEST_NULL);
    }
    /* 8. probes */
    {
        if (rank == 0) {
            char msg[37];
            memset(msg, 'x', sizeof msg);
            OK(MPI_Send(msg, 37, MPI_CHAR, 1, 600, MPI_COMM_WORLD));
        } else {
            OK(MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st));
            CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 600);
            OK(MPI_Get_count(&st, MPI_CHAR, &count));
            CHECK(count == 37);
            flag = 0;
            OK(MPI_Iprobe(MPI_ANY_SOURCE, 600, MPI_COMM_WORLD, &flag, &st));
            CHECK(flag && st.MPI_TAG == 600);
            OK(MPI_Iprobe(0, 601, MPI_COMM_WORLD, &flag, &st));
            CHECK(!flag);
            char *b = malloc(count);
            OK(MPI_Recv(b, count, MPI_CHAR, 0, 600, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
            CHECK(b[36] == 'x');
            free(b);
        }
    }
    /* 9. Sendrecv, Sendrecv_replace */
    {
        long a = rank + 1000, b = -1;
        OK(MPI_Sendrecv(&a, 1, MPI_LONG, peer, 700, &b, 1, MPI_LONG, peer, 700, MPI_COMM_WORLD, &st));
        CHECK(b == peer + 1000 && st.MPI_SOURCE == peer && st.MPI_TAG == 700);
        int rep[3] = {rank, rank * 2, rank * 3};
        OK(MPI_Sendrecv_replace(rep, 3, MPI_INT, peer, 701, peer, 701, MPI_COMM_WORLD, &st));
        CHECK(rep[0] == peer && rep[1] == peer * 2 && rep[2] == peer * 3);
        OK(MPI_Sendrecv(&a, 1, MPI_LONG, MPI_PROC_NULL, 0, &b, 1, MPI_LONG, MPI_PROC_NULL, 0, MPI_COMM_WORLD, &st));
        CHECK(st.MPI_SOURCE == MPI_PROC_NULL);
    }
    /* 10. buffered sends */
    {
        int bsize = 4 * (MPI_BSEND_OVERHEAD + 100 * (int)sizeof(int));
        void *bbuf = malloc(bsize), *got;
        int gotsize;
        OK(MPI_Buffer_attach(bbuf, bsize));
        int data[100];
        if (rank == 0) {
            for (int k = 0; k < 3; k++) {
                for (i = 0; i < 100; i++) data[i] = k * 100 + i;
                OK(MPI_Bsend(data, 100, MPI_INT, 1, 800 + k, MPI_COMM_WORLD));
            }
            MPI_Request r;
            OK(MPI_Ibsend(data, 100, MPI_INT, 1, 803, MPI_COMM_WORLD, &r));
            OK(MPI_Wait(&r, MPI_STATUS_IGNORE));
        } else {
            for (int k = 3; k >= 0; k--) {
                OK(MPI_Recv(data, 100, MPI_INT, 0, 800 + k, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
                CHECK(data[5] == (k == 3 ? 2 : k) * 100 + 5);
            }
        }
        OK(MPI_Buffer_detach(&got, &gotsize));
        CHECK(got == bbuf && gotsize == bsize);
        free(bbuf);
    }
    /* 11. truncation, cancel, Request_get_status under MPI_ERRORS_RETURN */
    {
        OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
        int big[10], small[5];
        for (i = 0; i < 10; i++) big[i] = i + 1;
        if (rank == 0) {
            OK(MPI_Send(big, 10, MPI_INT, 1, 900, MPI_COMM_WORLD));
            OK(MPI_Send(big, 10, MPI_INT, 1, 901, MPI_COMM_WORLD));
            OK(MPI_Send(big, 10, MPI_INT, 1, 902, MPI_COMM_WORLD));
            OK(MPI_Send(big, 2, MPI_INT, 1, 903, MPI_COMM_WORLD));
        } else {
            int rc = MPI_Recv(small, 5, MPI_INT, 0, 900, MPI_COMM_WORLD, &st);
            CHECK(rc == MPI_ERR_TRUNCATE);
            CHECK(st.MPI_SOURCE == 0 && st.MPI_TAG == 900 && small[4] == 5);
            int cls;
            OK(MPI_Error_class(rc, &cls));
            CHECK(cls == MPI_ERR_TRUNCATE);
            MPI_Request r;
            OK(MPI_Irecv(small, 5, MPI_INT, 0, 901, MPI_COMM_WORLD, &r));
            rc = MPI_Wait(&r, &st);
            CHECK(rc == MPI_ERR_TRUNCATE && st.MPI_TAG == 901);
            /* the multiple forms report MPI_ERR_IN_STATUS */
            MPI_Request two[2];
            MPI_Status sts[2];
            int ok2[2];
            OK(MPI_Irecv(ok2, 2, MPI_INT, 0, 903, MPI_COMM_WORLD, &two[0]));
            OK(MPI_Irecv(small, 5, MPI_INT, 0, 902, MPI_COMM_WORLD, &two[1]));
            rc = MPI_Waitall(2, two, sts);
            CHECK(rc == MPI_ERR_IN_STATUS);
            CHECK(sts[0].MPI_ERROR == MPI_SUCCESS && sts[1].MPI_ERROR == MPI_ERR_TRUNCATE);
            CHECK(ok2[1] == 2 && sts[1].MPI_TAG == 902);
        }
        /* cancel an unmatched receive */
        MPI_Request r;
        int z;
        OK(MPI_Irecv(&z, 1, MPI_INT, peer, 999, MPI_COMM_WORLD, &r));
        OK(MPI_Request_get_status(r, &flag, &st));
        CHECK(!flag);
        OK(MPI_Cancel(&r));
        OK(MPI_Wait(&r, &st));
        OK(MPI_Test_cancelled(&st, &flag));
        CHECK(flag);
        OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL));
    }
    if (rank == 0) printf("p2p: all checks passed\n");
    OK(MPI_Finalize());
    return 0;
}
