# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled tree core: PUCT selection, walk to leaf with virtual loss, backup, commit.

The hot loops of step-level MCTS (MCTS-DPO, arXiv 2405.00451; algorithms.md section 3.3) over
the NumPy arrays of `search.tree.Tree`, batched over R requests that each name their tree.
`search/tree_py.py` is the pure-Python twin with the same functions, signatures and results
(its docstrings give the formulas and shapes); `search/core.py` picks one of the two.

Only typed memoryviews and scalars cross this boundary: no Python objects, configs or model
calls. Arithmetic is written in the same order as the twin so results are bit-identical.
"""
from libc.math cimport sqrt


cdef inline double _puct(double q, double prior, int visits, int pend, double sqrt_n,
                         double c_puct, double virtual_loss) noexcept nogil:
    return q - virtual_loss * pend + c_puct * prior * sqrt_n / (1.0 + visits + pend)


cdef void _select(const int[:, :, ::1] children, const int[:, ::1] num_children,
                  const int[:, ::1] depth, const unsigned char[:, ::1] is_terminal,
                  const int[:, ::1] visits, int[:, ::1] pending, const double[:, ::1] q,
                  const double[:, ::1] prior, const int[::1] tree, int[:, ::1] paths,
                  int[::1] lengths, const int[::1] depth_cap, double c_puct,
                  double virtual_loss) noexcept nogil:
    cdef Py_ssize_t r, k, max_len = paths.shape[1]
    cdef int b, node, c, best, length, own
    cdef double sqrt_n, score, best_score
    for r in range(tree.shape[0]):
        b = tree[r]
        length = lengths[r]
        node = paths[r, length - 1]
        own = 1 if length > 1 else 0     # this walk's own pending mark on node (not counted)
        while (num_children[b, node] > 0 and not is_terminal[b, node]
               and depth[b, node] < depth_cap[r] and length < max_len):
            sqrt_n = sqrt(<double>(visits[b, node] + pending[b, node] - own))
            best = -1
            best_score = 0.0
            for k in range(num_children[b, node]):
                c = children[b, node, k]
                score = _puct(q[b, c], prior[b, c], visits[b, c], pending[b, c], sqrt_n,
                              c_puct, virtual_loss)
                if best < 0 or score > best_score:
                    best = c
                    best_score = score
            paths[r, length] = best
            length += 1
            pending[b, best] += 1
            node = best
            own = 1
        lengths[r] = length


def select_leaves(const int[:, :, ::1] children, const int[:, ::1] num_children,
                  const int[:, ::1] depth, const unsigned char[:, ::1] is_terminal,
                  const int[:, ::1] visits, int[:, ::1] pending, const double[:, ::1] q,
                  const double[:, ::1] prior, const int[::1] tree, int[:, ::1] paths,
                  int[::1] lengths, const int[::1] depth_cap, *, double c_puct,
                  double virtual_loss):
    """Walk each request's path down by PUCT to a leaf, adding virtual loss (see tree_py)."""
    with nogil:
        _select(children, num_children, depth, is_terminal, visits, pending, q, prior, tree,
                paths, lengths, depth_cap, c_puct, virtual_loss)


cdef void _backup(const int[:, :, ::1] children, const int[:, ::1] num_children,
                  const int[:, ::1] parent, int[:, ::1] visits, int[:, ::1] pending,
                  double[:, ::1] q, double[:, ::1] value, const double[:, ::1] reward,
                  const int[::1] tree, const int[:, ::1] paths, const int[::1] lengths,
                  double discount) noexcept nogil:
    cdef Py_ssize_t r, i, k
    cdef int b, node, c
    cdef double num, den, w
    for r in range(tree.shape[0]):
        b = tree[r]
        for i in range(lengths[r] - 1, -1, -1):
            node = paths[r, i]
            if num_children[b, node] > 0:
                num = 0.0
                den = 0.0
                for k in range(num_children[b, node]):
                    c = children[b, node, k]
                    w = <double>(visits[b, c] if visits[b, c] > 1 else 1)
                    num += w * q[b, c]
                    den += w
                value[b, node] = num / den
            visits[b, node] += 1
            if i > 0:
                pending[b, node] -= 1
            if parent[b, node] >= 0:
                q[b, node] = reward[b, node] + discount * value[b, node]


def backup_paths(const int[:, :, ::1] children, const int[:, ::1] num_children,
                 const int[:, ::1] parent, int[:, ::1] visits, int[:, ::1] pending,
                 double[:, ::1] q, double[:, ::1] value, const double[:, ::1] reward,
                 const int[::1] tree, const int[:, ::1] paths, const int[::1] lengths, *,
                 double discount):
    """Back up each request's path from its leaf to its first node (see tree_py)."""
    with nogil:
        _backup(children, num_children, parent, visits, pending, q, value, reward, tree,
                paths, lengths, discount)


cdef void _commit(const int[:, :, ::1] children, const int[:, ::1] num_children,
                  const int[:, ::1] visits, const double[:, ::1] q, const double[:, ::1] value,
                  const int[::1] tree, const int[::1] roots, int[::1] out,
                  bint use_spread) noexcept nogil:
    cdef Py_ssize_t r, k, j
    cdef int b, root, c, g, best, lo, hi
    cdef long long key, best_key = 0
    cdef double best_q = 0.0, best_v = 0.0
    for r in range(tree.shape[0]):
        b = tree[r]
        root = roots[r]
        best = -1
        for k in range(num_children[b, root]):
            c = children[b, root, k]
            lo = 0
            hi = 0
            if use_spread and num_children[b, c] > 0:
                lo = visits[b, children[b, c, 0]]
                hi = lo
                for j in range(1, num_children[b, c]):
                    g = visits[b, children[b, c, j]]
                    if g < lo:
                        lo = g
                    if g > hi:
                        hi = g
            key = <long long>visits[b, c] * (1 + hi - lo)
            if (best < 0 or key > best_key
                    or (key == best_key and (q[b, c] > best_q
                                             or (q[b, c] == best_q and value[b, c] > best_v)))):
                best = c
                best_key = key
                best_q = q[b, c]
                best_v = value[b, c]
        out[r] = best


def commit_children(const int[:, :, ::1] children, const int[:, ::1] num_children,
                    const int[:, ::1] visits, const double[:, ::1] q, const double[:, ::1] value,
                    const int[::1] tree, const int[::1] roots, int[::1] out, *, bint use_spread):
    """Pick the child each search root commits to (see tree_py)."""
    with nogil:
        _commit(children, num_children, visits, q, value, tree, roots, out, use_spread)
