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
    connected to the scheduler at `scheduler` (e.g. 'tcp://host:8786', an existing cluster), or on a
    local cluster of `workers` processes with one thread each, closed on exit."""
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
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client.get_executor()
