/* Communicators, groups, info, Dims_create and Cartesian topologies (4 ranks). */
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
    int size, res, i, flag;
    OK(MPI_Init(&argc, &argv));
    OK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    OK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    CHECK(size == 4);

    /* dup / compare / names */
    MPI_Comm dup;
    OK(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
    OK(MPI_Comm_compare(MPI_COMM_WORLD, dup, &res));
    CHECK(res == MPI_CONGRUENT);
    OK(MPI_Comm_compare(dup, dup, &res));
    CHECK(res == MPI_IDENT);
    char name[MPI_MAX_OBJECT_NAME];
    int len;
    OK(MPI_Comm_get_name(MPI_COMM_WORLD, name, &len));
    CHECK(strcmp(name, "MPI_COMM_WORLD") == 0 && len == 14);
    OK(MPI_Comm_set_name(dup, "my dup"));
    OK(MPI_Comm_get_name(dup, name, &len));
    CHECK(strcmp(name, "my dup") == 0);
    /* messages on the dup do not match those on the world */
    int a = -1, b = -1;
    if (rank == 0) {
        int one = 1, two = 2;
        OK(MPI_Send(&one, 1, MPI_INT, 1, 0, MPI_COMM_WORLD));
        OK(MPI_Send(&two, 1, MPI_INT, 1, 0, dup));
    } else if (rank == 1) {
        OK(MPI_Recv(&b, 1, MPI_INT, 0, 0, dup, MPI_STATUS_IGNORE));
        OK(MPI_Recv(&a, 1, MPI_INT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        CHECK(a == 1 && b == 2);
    }
    OK(MPI_Comm_test_inter(dup, &flag));
    CHECK(!flag);
    MPI_Comm parent;
    OK(MPI_Comm_get_parent(&parent));
    CHECK(parent == MPI_COMM_NULL);

    /* split: evens and odds, reversed order by key */
    MPI_Comm half;
    OK(MPI_Comm_split(MPI_COMM_WORLD, rank % 2, -rank, &half));
    int hr, hs;
    OK(MPI_Comm_rank(half, &hr));
    OK(MPI_Comm_size(half, &hs));
    CHECK(hs == 2 && hr == (rank < 2 ? 1 : 0));
    int v = rank, w = -1;
    OK(MPI_Sendrecv(&v, 1, MPI_INT, 1 - hr, 1, &w, 1, MPI_INT, 1 - hr, 1, half, MPI_STATUS_IGNORE));
    CHECK(w == (rank + 2) % 4);
    OK(MPI_Comm_compare(MPI_COMM_WORLD, half, &res));
    CHECK(res == MPI_UNEQUAL);
    MPI_Comm none;
    OK(MPI_Comm_split(MPI_COMM_WORLD, rank == 3 ? MPI_UNDEFINED : 0, 0, &none));
    CHECK((rank == 3) == (none == MPI_COMM_NULL));
    if (none != MPI_COMM_NULL) OK(MPI_Comm_free(&none));
    /* a reordered world is SIMILAR */
    MPI_Comm rev;
    OK(MPI_Comm_split(MPI_COMM_WORLD, 0, size - rank, &rev));
    OK(MPI_Comm_compare(MPI_COMM_WORLD, rev, &res));
    CHECK(res == MPI_SIMILAR);
    OK(MPI_Comm_free(&rev));
    /* split_type shared: one node */
    MPI_Comm node;
    OK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
    OK(MPI_Comm_size(node, &hs));
    CHECK(hs == 4);
    OK(MPI_Comm_free(&node));
    OK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_UNDEFINED, rank, MPI_INFO_NULL, &node));
    CHECK(node == MPI_COMM_NULL);

    /* groups */
    MPI_Group wg, g1, g2, gu, gi, gd;
    OK(MPI_Comm_group(MPI_COMM_WORLD, &wg));
    OK(MPI_Group_size(wg, &hs));
    CHECK(hs == 4);
    OK(MPI_Group_rank(wg, &hr));
    CHECK(hr == rank);
    int inc[2] = {3, 1};
    OK(MPI_Group_incl(wg, 2, inc, &g1));
    OK(MPI_Group_rank(g1, &hr));
    CHECK(hr == (rank == 3 ? 0 : rank == 1 ? 1 : MPI_UNDEFINED));
    int exc[1] = {0};
    OK(MPI_Group_excl(wg, 1, exc, &g2));
    OK(MPI_Group_size(g2, &hs));
    CHECK(hs == 3);
    int r1[3] = {0, 1, 2}, r2[3];
    OK(MPI_Group_translate_ranks(g2, 3, r1, g1, r2));
    CHECK(r2[0] == 1 && r2[1] == MPI_UNDEFINED && r2[2] == 0);
    OK(MPI_Group_union(g1, g2, &gu));
    OK(MPI_Group_size(gu, &hs));
    CHECK(hs == 3);
    OK(MPI_Group_intersection(g1, g2, &gi));
    OK(MPI_Group_compare(gi, g1, &res));
    CHECK(res == MPI_IDENT);
    OK(MPI_Group_difference(g2, g1, &gd));
    OK(MPI_Group_size(gd, &hs));
    CHECK(hs == 1);
    OK(MPI_Group_compare(g2, wg, &res));
    CHECK(res == MPI_UNEQUAL);
    int rg[1][3] = {{3, 0, -1}};
    MPI_Group grev;
    OK(MPI_Group_range_incl(wg, 1, rg, &grev));
    OK(MPI_Group_compare(grev, wg, &res));
    CHECK(res == MPI_SIMILAR);
    OK(MPI_Group_rank(grev, &hr));
    CHECK(hr == 3 - rank);
    OK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int badr[1] = {9};
    MPI_Group gb;
    CHECK(MPI_Group_incl(wg, 1, badr, &gb) == MPI_ERR_RANK);
    CHECK(MPI_Group_size(MPI_GROUP_NULL, &hs) == MPI_ERR_GROUP);
    /* create from a group */
    MPI_Comm sub;
    OK(MPI_Comm_create(MPI_COMM_WORLD, g1, &sub));
    if (rank == 1 || rank == 3) {
        OK(MPI_Comm_rank(sub, &hr));
        CHECK(hr == (rank == 3 ? 0 : 1));
        OK(MPI_Comm_free(&sub));
    } else {
        CHECK(sub == MPI_COMM_NULL);
    }
    MPI_Group *all[] = {&wg, &g1, &g2, &gu, &gi, &gd, &grev};
    for (i = 0; i < 7; i++) {
        OK(MPI_Group_free(all[i]));
        CHECK(*all[i] == MPI_GROUP_NULL);
    }

    /* info */
    MPI_Info info, info2;
    OK(MPI_Info_create(&info));
    OK(MPI_Info_set(info, "alpha", "one"));
    OK(MPI_Info_set(info, "beta", "two"));
    OK(MPI_Info_set(info, "alpha", "uno"));
    int nk;
    OK(MPI_Info_get_nkeys(info, &nk));
    CHECK(nk == 2);
    char key[MPI_MAX_INFO_KEY], val[64];
    OK(MPI_Info_get_nthkey(info, 1, key));
    CHECK(strcmp(key, "beta") == 0);
    OK(MPI_Info_get(info, "alpha", 63, val, &flag));
    CHECK(flag && strcmp(val, "uno") == 0);
    int bl = 2;
    OK(MPI_Info_get_string(info, "beta", &bl, val, &flag));
    CHECK(flag && bl == 4 && strcmp(val, "t") == 0);
    OK(MPI_Info_dup(info, &info2));
    OK(MPI_Info_delete(info, "alpha"));
    CHECK(MPI_Info_delete(info, "alpha") == MPI_ERR_INFO_NOKEY);
    OK(MPI_Info_get(info, "alpha", 63, val, &flag));
    CHECK(!flag);
    OK(MPI_Info_get(info2, "alpha", 63, val, &flag));
    CHECK(flag);
    OK(MPI_Info_free(&info));
    OK(MPI_Info_free(&info2));
    CHECK(info == MPI_INFO_NULL);

    /* Dims_create and Cartesian topologies */
    int dims[2] = {0, 0};
    OK(MPI_Dims_create(4, 2, dims));
    CHECK(dims[0] == 2 && dims[1] == 2);
    int d3[3] = {0, 3, 0};
    OK(MPI_Dims_create(24, 3, d3));
    CHECK(d3[0] == 4 && d3[1] == 3 && d3[2] == 2);
    int d1[2] = {0, 5};
    CHECK(MPI_Dims_create(12, 2, d1) == MPI_ERR_DIMS);
    int periods[2] = {1, 0};
    MPI_Comm cart;
    OK(MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &cart));
    int t;
    OK(MPI_Topo_test(cart, &t));
    CHECK(t == MPI_CART);
    OK(MPI_Topo_test(MPI_COMM_WORLD, &t));
    CHECK(t == MPI_UNDEFINED);
    int nd, coords[2], gd2[2], gp[2], gc[2], cr;
    OK(MPI_Cartdim_get(cart, &nd));
    CHECK(nd == 2);
    OK(MPI_Comm_rank(cart, &cr));
    OK(MPI_Cart_coords(cart, cr, 2, coords));
    CHECK(coords[0] == cr / 2 && coords[1] == cr % 2);
    OK(MPI_Cart_get(cart, 2, gd2, gp, gc));
    CHECK(gd2[0] == 2 && gd2[1] == 2 && gp[0] == 1 && gp[1] == 0 && gc[0] == coords[0]);
    int c2[2] = {-1, 1}, rr;
    OK(MPI_Cart_rank(cart, c2, &rr));
    CHECK(rr == 3);
    int c3[2] = {0, 2};
    CHECK(MPI_Cart_rank(cart, c3, &rr) == MPI_ERR_RANK);
    int src, dst;
    OK(MPI_Cart_shift(cart, 1, 1, &src, &dst));
    CHECK(coords[1] == 0 ? (src == MPI_PROC_NULL && dst == cr + 1) : (src == cr - 1 && dst == MPI_PROC_NULL));
    MPI_Comm cdup;
    OK(MPI_Comm_dup(cart, &cdup));
    OK(MPI_Topo_test(cdup, &t));
    CHECK(t == MPI_CART);
    OK(MPI_Comm_free(&cdup));
    OK(MPI_Comm_free(&cart));
    /* a grid smaller than the communicator */
    int small[1] = {3}, per[1] = {0};
    OK(MPI_Cart_create(MPI_COMM_WORLD, 1, small, per, 0, &cart));
    CHECK((rank == 3) == (cart == MPI_COMM_NULL));
    if (cart != MPI_COMM_NULL) {
        OK(MPI_Comm_size(cart, &hs));
        CHECK(hs == 3);
        OK(MPI_Comm_free(&cart));
    }
    OK(MPI_Comm_free(&half));
    OK(MPI_Comm_free(&dup));
    if (rank == 0) printf("comm: all checks passed\n");
    OK(MPI_Finalize());
    return 0;
}
