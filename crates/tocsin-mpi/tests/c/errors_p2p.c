/* Error classes under MPI_ERRORS_RETURN; with argv[1] = "fatal", an invalid rank under the
 * default handler (the job must end with a message). */
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
#define EXPECT(call, cls)                                                            \
    do {                                                                             \
        int rc_ = (call);                                                            \
        if (rc_ != (cls)) {                                                          \
            fprintf(stderr, "rank %d: line %d: %s returned %d, expected %s\n", rank,  \
                    __LINE__, #call, rc_, #cls);                                     \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static int handler_calls, handler_code;
static void my_handler(MPI_Comm *c, int *code, ...) {
    (void)c;
    handler_calls++;
    handler_code = *code;
}

int main(int argc, char **argv) {
    int x[4] = {0}, flag;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc > 1 && strcmp(argv[1], "fatal") == 0) {
        if (rank == 0) MPI_Send(x, 1, MPI_INT, 99, 0, MPI_COMM_WORLD);
        else MPI_Recv(x, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        fprintf(stderr, "rank %d: still running after a fatal error\n", rank);
        return 0;
    }
    EXPECT(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), MPI_SUCCESS);
    EXPECT(MPI_Send(x, 1, MPI_INT, 99, 0, MPI_COMM_WORLD), MPI_ERR_RANK);
    EXPECT(MPI_Send(x, 1, MPI_INT, MPI_ANY_SOURCE, 0, MPI_COMM_WORLD), MPI_ERR_RANK);
    EXPECT(MPI_Recv(x, 1, MPI_INT, 5, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE), MPI_ERR_RANK);
    EXPECT(MPI_Send(x, 1, MPI_INT, 0, -5, MPI_COMM_WORLD), MPI_ERR_TAG);
    EXPECT(MPI_Send(x, 1, MPI_INT, 0, MPI_ANY_TAG, MPI_COMM_WORLD), MPI_ERR_TAG);
    EXPECT(MPI_Recv(x, 1, MPI_INT, 0, -1, MPI_COMM_WORLD, MPI_STATUS_IGNORE), MPI_ERR_TAG);
    EXPECT(MPI_Send(x, -1, MPI_INT, 0, 0, MPI_COMM_WORLD), MPI_ERR_COUNT);
    EXPECT(MPI_Send(x, 1, MPI_DATATYPE_NULL, 0, 0, MPI_COMM_WORLD), MPI_ERR_TYPE);
    EXPECT(MPI_Send(x, 1, (MPI_Datatype)(void *)x, 0, 0, MPI_COMM_WORLD), MPI_ERR_TYPE);
    EXPECT(MPI_Send(NULL, 3, MPI_INT, 0, 0, MPI_COMM_WORLD), MPI_ERR_BUFFER);
    /* errors on an invalid communicator go to MPI_COMM_WORLD's handler */
    EXPECT(MPI_Send(x, 1, MPI_INT, 0, 0, MPI_COMM_NULL), MPI_ERR_COMM);
    EXPECT(MPI_Send(x, 1, MPI_INT, 0, 0, (MPI_Comm)(void *)x), MPI_ERR_COMM);
    MPI_Request bad = (MPI_Request)(void *)x, nul = MPI_REQUEST_NULL;
    EXPECT(MPI_Wait(&bad, MPI_STATUS_IGNORE), MPI_ERR_REQUEST);
    EXPECT(MPI_Test(&bad, &flag, MPI_STATUS_IGNORE), MPI_ERR_REQUEST);
    EXPECT(MPI_Waitall(1, &bad, MPI_STATUSES_IGNORE), MPI_ERR_REQUEST);
    EXPECT(MPI_Request_free(&nul), MPI_ERR_REQUEST);
    EXPECT(MPI_Start(&nul), MPI_ERR_REQUEST);
    EXPECT(MPI_Wait(&nul, MPI_STATUS_IGNORE), MPI_SUCCESS);
    /* Isend to an invalid rank fails at once, leaving no request */
    MPI_Request r = MPI_REQUEST_NULL;
    EXPECT(MPI_Isend(x, 1, MPI_INT, 42, 0, MPI_COMM_WORLD, &r), MPI_ERR_RANK);
    /* a user handler is called with the class */
    MPI_Errhandler eh;
    EXPECT(MPI_Comm_create_errhandler(my_handler, &eh), MPI_SUCCESS);
    EXPECT(MPI_Comm_set_errhandler(MPI_COMM_WORLD, eh), MPI_SUCCESS);
    EXPECT(MPI_Send(x, 1, MPI_INT, 0, -7, MPI_COMM_WORLD), MPI_ERR_TAG);
    CHECK(handler_calls == 1 && handler_code == MPI_ERR_TAG);
    EXPECT(MPI_Comm_call_errhandler(MPI_COMM_WORLD, MPI_ERR_OTHER), MPI_SUCCESS);
    CHECK(handler_calls == 2 && handler_code == MPI_ERR_OTHER);
    MPI_Errhandler got;
    EXPECT(MPI_Comm_get_errhandler(MPI_COMM_WORLD, &got), MPI_SUCCESS);
    CHECK(got == eh);
    EXPECT(MPI_Errhandler_free(&eh), MPI_SUCCESS);
    CHECK(eh == MPI_ERRHANDLER_NULL);
    EXPECT(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), MPI_SUCCESS);
    char s[MPI_MAX_ERROR_STRING];
    int len;
    EXPECT(MPI_Error_string(MPI_ERR_RANK, s, &len), MPI_SUCCESS);
    CHECK(strstr(s, "MPI_ERR_RANK") != NULL && len == (int)strlen(s));
    int cls;
    EXPECT(MPI_Error_class(MPI_ERR_TRUNCATE, &cls), MPI_SUCCESS);
    CHECK(cls == MPI_ERR_TRUNCATE);
    /* attributes */
    int *tag_ub;
    EXPECT(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &flag), MPI_SUCCESS);
    CHECK(flag && *tag_ub == 2147483647);
    int *wg;
    EXPECT(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_WTIME_IS_GLOBAL, &wg, &flag), MPI_SUCCESS);
    CHECK(flag && *wg == 0);
    int *host;
    EXPECT(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_HOST, &host, &flag), MPI_SUCCESS);
    CHECK(flag && *host == MPI_PROC_NULL);
    int kv;
    EXPECT(MPI_Comm_create_keyval(MPI_COMM_DUP_FN, MPI_COMM_NULL_DELETE_FN, &kv, NULL), MPI_SUCCESS);
    static int payload = 1234;
    EXPECT(MPI_Comm_set_attr(MPI_COMM_WORLD, kv, &payload), MPI_SUCCESS);
    int *pv;
    EXPECT(MPI_Comm_get_attr(MPI_COMM_WORLD, kv, &pv, &flag), MPI_SUCCESS);
    CHECK(flag && pv == &payload);
    MPI_Comm dup;
    EXPECT(MPI_Comm_dup(MPI_COMM_WORLD, &dup), MPI_SUCCESS);
    EXPECT(MPI_Comm_get_attr(dup, kv, &pv, &flag), MPI_SUCCESS);
    CHECK(flag && pv == &payload);
    /* the dup inherits MPI_ERRORS_RETURN */
    EXPECT(MPI_Send(x, 1, MPI_INT, 99, 0, dup), MPI_ERR_RANK);
    EXPECT(MPI_Comm_delete_attr(MPI_COMM_WORLD, kv), MPI_SUCCESS);
    EXPECT(MPI_Comm_get_attr(MPI_COMM_WORLD, kv, &pv, &flag), MPI_SUCCESS);
    CHECK(!flag);
    EXPECT(MPI_Comm_get_attr(MPI_COMM_WORLD, 987654, &pv, &flag), MPI_ERR_KEYVAL);
    EXPECT(MPI_Comm_free(&dup), MPI_SUCCESS);
    CHECK(dup == MPI_COMM_NULL);
    EXPECT(MPI_Comm_free_keyval(&kv), MPI_SUCCESS);
    CHECK(kv == MPI_KEYVAL_INVALID);
    EXPECT(MPI_Comm_free(&dup), MPI_ERR_COMM);
    MPI_Comm w = MPI_COMM_WORLD;
    EXPECT(MPI_Comm_free(&w), MPI_ERR_COMM);
    if (rank == 0) printf("errors: all checks passed\n");
    MPI_Finalize();
    return 0;
}
