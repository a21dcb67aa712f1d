"""Multinomial logistic regression with L2, fitted by L-BFGS, in numpy alone.

Used by the embedded intent model (:mod:`bot.nlu.classifier`) and by the knowledge base's party classifier
(:mod:`kb.search`). Why not scikit-learn: importing it costs over a second and ~70 MB, and its large
temporary arrays and BLAS threads are slow on small shared machines; these models are small enough for
plain numpy with preallocated buffers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Objective:
    """Multinomial logistic loss + L2 (intercept not penalized) over a TF-IDF matrix in coordinate form.

    Written with numpy alone, with preallocated buffers and no BLAS calls: scikit-learn would cost over
    a second and ~70 MB just to import, and large temporary arrays and BLAS threads are slow on small
    shared machines. Parameters are one flat vector: ``W`` (classes × features, row-major) then ``b``.
    """

    def __init__(
        self,
        rows: npt.NDArray[np.intp],
        cols: npt.NDArray[np.intp],
        vals: FloatArray,
        labels: npt.NDArray[np.intp],
        n_features: int,
        n_classes: int,
        c: float,
    ) -> None:
        self.rows, self.cols, self.vals = rows, cols, vals
        self.n, self.v, self.k = len(labels), n_features, n_classes
        self.label_index = (labels, np.arange(len(labels)))
        self.inv_c = 1.0 / c
        self.size = n_classes * n_features + n_classes
        self._buf = np.empty(len(cols))
        self._z = np.empty((n_classes, len(labels)))
        self._wbuf = np.empty((n_classes, n_features))

    def __call__(self, theta: FloatArray, grad: FloatArray) -> float:
        """The loss at ``theta``; writes the gradient into ``grad``."""
        kv = self.k * self.v
        w = theta[:kv].reshape(self.k, self.v)
        gw = grad[:kv].reshape(self.k, self.v)
        buf, z = self._buf, self._z
        for c in range(self.k):  # z = W X^T
            np.take(w[c], self.cols, out=buf)
            np.multiply(buf, self.vals, out=buf)
            z[c] = np.bincount(self.rows, weights=buf, minlength=self.n)
        np.add(z, theta[kv:, None], out=z)
        np.subtract(z, z.max(axis=0), out=z)
        np.exp(z, out=z)
        total = z.sum(axis=0)
        loss = -float(np.log(z[self.label_index] / total).sum())
        np.divide(z, total, out=z)
        z[self.label_index] -= 1.0  # z is now dloss/dlogits
        for c in range(self.k):  # grad W = (P - Y) X
            np.take(z[c], self.rows, out=buf)
            np.multiply(buf, self.vals, out=buf)
            gw[c] = np.bincount(self.cols, weights=buf, minlength=self.v)
        grad[kv:] = z.sum(axis=1)
        np.multiply(w, w, out=self._wbuf)
        penalty = 0.5 * self.inv_c * float(self._wbuf.sum())
        np.multiply(w, self.inv_c, out=self._wbuf)
        gw += self._wbuf
        return loss + penalty


def lbfgs(
    f: Objective, x: FloatArray, *, memory: int = 7, max_iter: int = 300, rtol: float = 1e-7
) -> FloatArray:
    """Minimize ``f`` from ``x`` with L-BFGS and a backtracking (Armijo) line search; returns the argmin."""
    size = f.size
    g, gn, q, xn, tmp = (np.empty(size) for _ in range(5))
    # The curvature pairs only shape the search direction, so single precision is enough for them; it
    # halves the largest allocation of training (2 x memory x size), and so the server's peak memory.
    s_hist, y_hist = np.empty((memory, size), np.float32), np.empty((memory, size), np.float32)
    rho, alpha = np.empty(memory), np.empty(memory)

    def dot(a: FloatArray, b: FloatArray) -> float:
        np.multiply(a, b, out=tmp)
        return float(tmp.sum())

    fx = f(x, g)
    stored = 0
    for _ in range(max_iter):
        q[:] = g
        h = min(stored, memory)
        for j in range(h):  # two-loop recursion, newest first
            i = (stored - 1 - j) % memory
            alpha[i] = rho[i] * dot(s_hist[i], q)
            np.multiply(y_hist[i], alpha[i], out=tmp)
            q -= tmp
        if h:
            i = (stored - 1) % memory
            q *= dot(s_hist[i], y_hist[i]) / dot(y_hist[i], y_hist[i])
        else:
            q *= 1.0 / max(1.0, float(np.abs(g).max()))
        for j in range(h - 1, -1, -1):
            i = (stored - 1 - j) % memory
            beta = rho[i] * dot(y_hist[i], q)
            np.multiply(s_hist[i], alpha[i] - beta, out=tmp)
            q += tmp
        np.negative(q, out=q)  # q is now the search direction
        slope = dot(g, q)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            np.negative(g, out=q)
            slope = -dot(g, g)
            stored = 0
        step = 1.0
        while True:
            np.multiply(q, step, out=tmp)
            np.add(x, tmp, out=xn)
            fn = f(xn, gn)
            if fn <= fx + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        i = stored % memory
        np.subtract(xn, x, out=s_hist[i])
        np.subtract(gn, g, out=y_hist[i])
        sy = dot(s_hist[i], y_hist[i])
        if sy > 1e-12:
            rho[i] = 1.0 / sy
            stored += 1
        converged = fx - fn <= rtol * max(abs(fx), 1.0)
        x, xn = xn, x
        g, gn = gn, g
        fx = fn
        if converged:
            break
    return x
