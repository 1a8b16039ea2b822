/* One argument error, chosen by argv[1]: under the default handler the job ends nonzero
   with a message naming the function and the class; with MPI_ERRORS_RETURN (if
   MPI_Comm_set_errhandler exists) the class is returned. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int x[4] = {0}, y[4];
    const char *w = argc > 1 ? argv[1] : "root";
    if (argc > 2 && MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS) {
        printf("no errhandler\n");
        MPI_Finalize();
        return 0;
    }
    int rc = -1;
    if (!strcmp(w, "root")) rc = MPI_Bcast(x, 1, MPI_INT, 9, MPI_COMM_WORLD);
    else if (!strcmp(w, "count")) rc = MPI_Allreduce(x, y, -1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    else if (!strcmp(w, "type")) rc = MPI_Bcast(x, 1, MPI_DATATYPE_NULL, 0, MPI_COMM_WORLD);
    else if (!strcmp(w, "op")) rc = MPI_Allreduce(x, y, 1, MPI_INT, MPI_OP_NULL, MPI_COMM_WORLD);
    else if (!strcmp(w, "opdt")) rc = MPI_Allreduce(x, y, 1, MPI_FLOAT_INT, MPI_SUM, MPI_COMM_WORLD);
    else if (!strcmp(w, "longdouble")) rc = MPI_Allreduce(x, y, 1, MPI_LONG_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    else if (!strcmp(w, "comm")) rc = MPI_Barrier(MPI_COMM_NULL);
    printf("rc=%d\n", rc);
    MPI_Finalize();
    return 0;
}
