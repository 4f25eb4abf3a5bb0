# Declarations of the compiled tree core (keep in sync with tree_core.pyx): the nogil loops,
# cimport-able by other Cython modules. Shapes and formulas: search/tree_py.py.

cdef void _select(const int[:, :, ::1] children, const int[:, ::1] num_children,
                  const int[:, ::1] depth, const unsigned char[:, ::1] is_terminal,
                  const int[:, ::1] visits, int[:, ::1] pending, const double[:, ::1] q,
                  const double[:, ::1] prior, const int[::1] tree, int[:, ::1] paths,
                  int[::1] lengths, const int[::1] depth_cap, double c_puct,
                  double virtual_loss) noexcept nogil

cdef void _backup(const int[:, :, ::1] children, const int[:, ::1] num_children,
                  const int[:, ::1] parent, int[:, ::1] visits, int[:, ::1] pending,
                  double[:, ::1] q, double[:, ::1] value, const double[:, ::1] reward,
                  const int[::1] tree, const int[:, ::1] paths, const int[::1] lengths,
                  double discount) noexcept nogil

cdef void _commit(const int[:, :, ::1] children, const int[:, ::1] num_children,
                  const int[:, ::1] visits, const double[:, ::1] q, const double[:, ::1] value,
                  const int[::1] tree, const int[::1] roots, int[::1] out,
                  bint use_spread) noexcept nogil
