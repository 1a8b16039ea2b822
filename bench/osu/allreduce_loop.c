/* Back-to-back MPI_Allreduce of MPI_CHAR with MPI_SUM (no barrier between calls), per size:
 * the tight-loop check of BENCHMARKS.md "The MPI layer". Build with any mpicc, run on 2 ranks. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int c, char**v){ MPI_Init(&c,&v); int r; MPI_Comm_rank(MPI_COMM_WORLD,&r);
 int sizes[] = {4, 256, 2048, 4096, 16384};
 char *a = malloc(1<<20), *b = malloc(1<<20);
 for (int k=0;k<5;k++){ int n=sizes[k]; for(int i=0;i<1000;i++) MPI_Allreduce(a,b,n,MPI_CHAR,MPI_SUM,MPI_COMM_WORLD);
   MPI_Barrier(MPI_COMM_WORLD); double t=MPI_Wtime(); int N=20000; for(int i=0;i<N;i++) MPI_Allreduce(a,b,n,MPI_CHAR,MPI_SUM,MPI_COMM_WORLD); t=MPI_Wtime()-t;
   if(!r) printf("%6d B %.3f us\n", n, t/N*1e6); }
 MPI_Finalize(); }
