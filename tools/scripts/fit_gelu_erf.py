#!/usr/bin/python3
"""Fits the piecewise polynomial behind the vector GELU (kernels/cpu/vec_body.h,
kGeluErf) and prints it as the C++ table, with its error in float32.

erf(a) for a = |x| / sqrt 2 in [0, 4) is cut into 8 pieces of width 1/2; in
v = 2 a = |x| sqrt 2 piece k is [k, k + 1) and its polynomial takes
u = v - k - 1/2 in [-1/2, 1/2]. Each piece is a degree-7 Chebyshev
least-squares fit (close to minimax) turned into monomials of u, rounded to
float32; the error below evaluates it as the kernel does (Horner with FMA
in float32).

  /usr/bin/python3 tools/scripts/fit_gelu_erf.py
"""
import math

import numpy as np
from numpy.polynomial import chebyshev

PIECES, DEGREE = 8, 7
erf = np.vectorize(math.erf)


def fit():
    u = 0.5 * np.cos(np.linspace(0, np.pi, 4001))  # Chebyshev nodes on [-1/2, 1/2]
    table = np.zeros((DEGREE + 1, PIECES), np.float32)
    for k in range(PIECES):
        c = chebyshev.chebfit(2 * u, erf((k + 0.5 + u) / 2), DEGREE)
        mono = chebyshev.cheb2poly(c) * 2.0 ** np.arange(DEGREE + 1)  # in u, not 2u
        table[:, k] = mono.astype(np.float32)
    return table


def erf_of_v(table, v):
    """The kernel's arithmetic for v in [0, 8] (float32, FMA per step)."""
    v = v.astype(np.float32)
    k = np.minimum(np.floor(v).astype(np.int32), PIECES - 1)
    u = (v - k.astype(np.float32) - np.float32(0.5)).astype(np.float32)
    p = table[DEGREE, k]
    for j in range(DEGREE - 1, -1, -1):
        p = (p.astype(np.float64) * u + table[j, k]).astype(np.float32)
    return p


def main():
    table = fit()
    v = np.linspace(0, 8, 800001).astype(np.float32)
    err = np.abs(erf_of_v(table, v) - erf(v.astype(np.float64) / 2))
    print("// max |error| over v in [0, 8]: %.3g (at v = %g)" % (err.max(), v[err.argmax()]))
    for j in range(DEGREE + 1):
        print("    {" + ", ".join("%.9ef" % c for c in table[j]) + "},  // u^%d" % j)


if __name__ == "__main__":
    main()
