/* Datatype queries through the C API (MPI standard's examples), names, pack/unpack. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

static int fails;
#define CHECK(c, ...) do { if (!(c)) { fails++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

static void ext(MPI_Datatype t, MPI_Aint elb, MPI_Aint eext, int esize, const char *what) {
    MPI_Aint lb, e; int s; MPI_Count sc;
    MPI_Type_get_extent(t, &lb, &e);
    MPI_Type_size(t, &s);
    MPI_Type_size_c(t, &sc);
    CHECK(lb == elb && e == eext && s == esize && sc == esize, "%s: lb %ld extent %ld size %d (expected %ld %ld %d)", what, (long)lb, (long)e, s, (long)elb, (long)eext, esize);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    char name[MPI_MAX_OBJECT_NAME]; int len;
    MPI_Type_get_name(MPI_CHAR, name, &len);
    CHECK(strcmp(name, "MPI_CHAR") == 0 && len == 8, "name of MPI_CHAR: '%s' %d", name, len);
    MPI_Type_get_name(MPI_DOUBLE_INT, name, &len);
    CHECK(strcmp(name, "MPI_DOUBLE_INT") == 0, "name '%s'", name);
    /* MPI-4.1 §5.1.2 example: oldtype {(double,0),(char,8)} extent 16 */
    MPI_Datatype dc, t;
    int bl[2] = {1, 1}; MPI_Aint d[2] = {0, 8}; MPI_Datatype ty[2] = {MPI_DOUBLE, MPI_CHAR};
    MPI_Type_create_struct(2, bl, d, ty, &dc);
    ext(dc, 0, 16, 9, "struct {double,char}");
    MPI_Type_contiguous(3, dc, &t); ext(t, 0, 48, 27, "contiguous(3)"); MPI_Type_free(&t);
    MPI_Type_vector(2, 3, 4, dc, &t); ext(t, 0, 16 * (4 + 3), 54, "vector(2,3,4)"); MPI_Type_free(&t);
    MPI_Type_vector(3, 1, -2, dc, &t); ext(t, -64, 80, 27, "vector(3,1,-2)"); MPI_Type_free(&t);
    MPI_Type_create_hvector(2, 3, 4, dc, &t); ext(t, 0, 52, 54, "hvector(2,3,4)"); MPI_Type_free(&t);
    { int b[2] = {3, 1}, dd[2] = {4, 0}; MPI_Type_indexed(2, b, dd, dc, &t); ext(t, 0, 112, 36, "indexed"); MPI_Type_free(&t); }
    { int b[2] = {3, 1}; MPI_Aint dd[2] = {4, 0}; MPI_Type_create_hindexed(2, b, dd, dc, &t); ext(t, 0, 52, 36, "hindexed"); MPI_Type_free(&t); }
    { int dd[3] = {0, 3, 8}; MPI_Type_create_indexed_block(3, 2, dd, MPI_INT, &t); ext(t, 0, 40, 24, "indexed_block"); MPI_Type_free(&t); }
    { MPI_Aint dd[2] = {0, 100}; MPI_Type_create_hindexed_block(2, 1, dd, MPI_INT, &t); ext(t, 0, 104, 8, "hindexed_block"); MPI_Type_free(&t); }
    { /* struct example: {(float,0),(float,4),(double,16),(char,24),(char,25),(char,26)} */
      int b[3] = {2, 1, 3}; MPI_Aint dd[3] = {0, 16, 26}; MPI_Datatype tt[3] = {MPI_FLOAT, MPI_DOUBLE, MPI_CHAR};
      MPI_Type_create_struct(3, b, dd, tt, &t); ext(t, 0, 32, 19, "struct example"); MPI_Type_free(&t); }
    { MPI_Aint tlb, text; MPI_Type_create_resized(MPI_INT, -4, 16, &t); ext(t, -4, 16, 4, "resized");
      MPI_Type_get_true_extent(t, &tlb, &text); CHECK(tlb == 0 && text == 4, "true extent %ld %ld", (long)tlb, (long)text);
      int ni, na, nd, comb; MPI_Type_get_envelope(t, &ni, &na, &nd, &comb);
      CHECK(comb == MPI_COMBINER_RESIZED && ni == 0 && na == 2 && nd == 1, "envelope");
      MPI_Type_get_envelope(MPI_INT, &ni, &na, &nd, &comb); CHECK(comb == MPI_COMBINER_NAMED, "named");
      MPI_Type_set_name(t, "my type"); MPI_Type_get_name(t, name, &len); CHECK(strcmp(name, "my type") == 0, "set_name");
      MPI_Datatype t2; MPI_Type_dup(t, &t2); ext(t2, -4, 16, 4, "dup"); MPI_Type_free(&t2);
      MPI_Type_free(&t); CHECK(t == MPI_DATATYPE_NULL, "free sets null"); }
    ext(MPI_DOUBLE_INT, 0, 16, 12, "MPI_DOUBLE_INT");
    ext(MPI_SHORT_INT, 0, 8, 6, "MPI_SHORT_INT");
    /* pack / unpack a column */
    { double m[3][3]; for (int i = 0; i < 9; i++) m[i / 3][i % 3] = i;
      MPI_Type_vector(3, 1, 3, MPI_DOUBLE, &t); MPI_Type_commit(&t);
      int ps; MPI_Pack_size(2, t, MPI_COMM_WORLD, &ps); CHECK(ps == 48, "pack size %d", ps);
      char buf[64]; int pos = 0;
      CHECK(MPI_Pack(&m[0][1], 1, t, buf, 64, &pos, MPI_COMM_WORLD) == MPI_SUCCESS && pos == 24, "pack pos %d", pos);
      double out[3]; int p2 = 0;
      MPI_Unpack(buf, 64, &p2, out, 3, MPI_DOUBLE, MPI_COMM_WORLD);
      CHECK(p2 == 24 && out[0] == 1 && out[1] == 4 && out[2] == 7, "unpack %g %g %g", out[0], out[1], out[2]);
      MPI_Type_free(&t); }
    { int a[4]; MPI_Aint x, y; MPI_Get_address(&a[0], &x); MPI_Get_address(&a[3], &y);
      CHECK(MPI_Aint_diff(y, x) == 12 && MPI_Aint_add(x, 12) == y, "addresses"); }
    MPI_Datatype dcc; MPI_Type_dup(dc, &dcc); MPI_Type_free(&dcc); MPI_Type_free(&dc);
    if (fails == 0) printf("types: all checks passed\n");
    MPI_Finalize();
    return fails != 0;
}
