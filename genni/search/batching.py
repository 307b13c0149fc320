"""How the search visits the rows of its batch: all at once off the CPU, one row at a time on it.

Element i's θ must not depend on which other elements share its batch (resuming, ``indices=``, another
``batch_size``).  Batched BLAS calls do not promise that on the CPU: MKL's batched GEMM rounds an
element's product differently with its position in the batch and the batch's size (measured on small
products, e.g. [33, 128]·[128, 33]), and torch splits an elementwise map over threads at offsets
that depend on the whole tensor's size.  So on the CPU every product that touches one element's data
runs on that element alone, single-threaded; the elements are spread over ``torch.get_num_threads()``
worker threads (:class:`RowRunner`), which keeps every core busy on whole elements (no synchronisation
inside a product, nothing lost to a busy machine's scheduling of a thread team) and makes an element's
bits independent of its batch-mates and of the thread count.  A model whose evaluations share mutable
state (``Model.thread_safe`` false) runs its rows one after another in the calling thread instead,
each with torch's thread count: bits then independent of the batch, not of the thread count.  Off the
CPU (CUDA) the same maths runs on the whole batch at once (batched GEMMs, batched Cholesky),
reproducible for a given batch composition only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from threadpoolctl import threadpool_limits

from ..discrepancy import discrepancy
from ..models.base import Model


def batched(t: torch.Tensor) -> bool:
    """Whether products on t run batched (off the CPU) rather than row by row."""
    return t.device.type != "cpu"


class RowRunner:
    """Runs ``fn(rows)`` over the rows of the batch: once with every row (a LongTensor) off the CPU; on
    the CPU once per row (``fn(slice(i, i + 1))``), each row a task taken by the next free one of
    ``workers`` threads whose torch operations run single-threaded, or, for a model whose evaluations
    must not run concurrently (``thread_safe`` false: e.g. one cached module that ``functional_call``
    re-parametrises), one row after another in the calling thread with its thread count.

    device : where the batch lives;  workers : threads on the CPU (default: ``torch.get_num_threads()``)
    rows_batched : all rows at once (default: off the CPU);  thread_safe : rows may run concurrently

    While the runner is open, torch threads started elsewhere in the process begin single-threaded (torch
    keeps the last thread count set by any thread for threads it has not seen); :meth:`close` restores
    the count of the thread that opened it.
    """

    def __init__(self, device: torch.device | str, workers: int | None = None, rows_batched: bool | None = None,
                 thread_safe: bool = True):
        self.batched = torch.device(device).type != "cpu" if rows_batched is None else rows_batched
        self.threads = torch.get_num_threads()
        self.workers = max(1, workers or self.threads)
        self.thread_safe = thread_safe
        self._pool: ThreadPoolExecutor | None = None
        self._blas = None

    def __call__(self, fn, rows: torch.Tensor) -> None:
        if rows.numel() == 0:
            return
        if self.batched:
            fn(rows)
            return
        order = rows.tolist()
        if not self.thread_safe:
            for i in order:
                fn(slice(i, i + 1))
            return
        if self._blas is None:
            # numpy's BLAS (the Gram matrix's syrk) on one thread too, until close(): the workers are the
            # parallelism, and a row's bits must not depend on the thread count
            self._blas = threadpool_limits(1, user_api="blas")
        if self.workers == 1:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for i in order:
                    fn(slice(i, i + 1))
            finally:
                torch.set_num_threads(before)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, initializer=torch.set_num_threads, initargs=(1,),
                                            thread_name_prefix="genni-search")

        # one task per row, taken by whichever worker is free: a worker slowed by another process on its
        # core leaves its rows to the others (a row's bits do not depend on the thread that runs it)
        futures = [self._pool.submit(fn, slice(i, i + 1)) for i in order]
        for f in futures:
            f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            torch.set_num_threads(self.threads)
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None


def rowwise(fn, *tensors: torch.Tensor) -> torch.Tensor:
    """torch.stack([fn(t_1[i], t_2[i], ...) for every row i]), each row a fresh (aligned) copy:
    BLAS kernels (MKL) may round differently depending on the address alignment of a row.
    Off the CPU: ``torch.vmap(fn)`` over the rows."""
    if batched(tensors[0]):
        return torch.vmap(fn)(*tensors)
    return torch.stack([fn(*(t[i].clone() for t in tensors)) for i in range(tensors[0].shape[0])])


def discrepancy_rows(model: Model, theta: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """L(θ) = (1/n) Σ_x ‖f_θ(x) − y(x)‖² for each row of θ [N, P] → [N], each row on its own on the CPU."""
    if batched(theta):
        return discrepancy(model, theta, X, Y)
    return rowwise(lambda t: discrepancy(model, t[None], X, Y)[0], theta)


def each_row(fn, rows: torch.Tensor, device_batched: bool) -> None:
    """fn(rows) once for all rows off the CPU, else once per row (an element's bits must not depend
    on its batch-mates)."""
    if device_batched:
        fn(rows)
    else:
        for r in rows:
            fn(r[None])


__all__ = ["batched", "RowRunner", "rowwise", "each_row", "discrepancy_rows"]
