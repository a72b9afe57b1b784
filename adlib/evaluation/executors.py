"""Executors for `adlib.evaluation.experiment.run`'s grids: in process, local Dask workers, or an existing Dask cluster.

Dask (`pip install 'adlib[cluster]'`) is imported only when a cluster is asked for. Each worker loads
its own backbone; the data, the feature cache (`ADLIB_CACHE_DIR`) and the result store
(`ADLIB_STORE_DIR`) must be on paths every worker sees, and are the state the workers share.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "a Dask cluster needs the packages dask and distributed: pip install 'adlib[cluster]' "
            "(or run `make setup`), or run without --scheduler / --workers"
        ) from None
    return distributed


@contextmanager
def grid_executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[Executor | None]:
    """None (run in process) when neither is given; else a `concurrent.futures.Executor` on Dask:
    connected to the scheduler at `scheduler` (e.g. 'tcp://host:8786', an existing cluster, whose workers'
    environment is its own), or on a local cluster of `workers` processes with one thread each and glibc's
    own allocator settings (`worker_environ`), closed on exit."""
    if scheduler and workers:
        raise ValueError("give either a scheduler address (an existing cluster) or a number of local workers, not both")
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}: use at least 1 local worker (or none to run in process)")
    if not scheduler and not workers:
        yield None
        return
    distributed = _distributed()
    if scheduler:
        with distributed.Client(scheduler) as client:
            yield client.get_executor()
        return
    import dask

    with (
        dask.config.set({ENVIRON: worker_environ(dask.config.get(ENVIRON, default={}))}),
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client.get_executor()


ENVIRON = "distributed.nanny.pre-spawn-environ"  # what Dask's nannies set in a worker's environment


def worker_environ(environ: dict[str, object]) -> dict[str, object]:
    """Dask's worker environment without `MALLOC_TRIM_THRESHOLD_`: Dask sets it to 64 KiB so that workers
    hand memory back to the system, but every feature batch and distance block then comes back from the
    system, which made a worker's fit 1.3x and its predict 1.2-1.3x the same evaluation in process; without
    it both are within 3 % (benchmarks/dask_overhead.py, benchmarks/NOTES.md). The thread limits stay."""
    return {name: value for name, value in environ.items() if name != "MALLOC_TRIM_THRESHOLD_"}
