"""`dask`: tasks on a Dask cluster: an existing one (`--scheduler tcp://host:8786`) or a
LocalCluster this executor starts, bound to 127.0.0.1 only (no dashboard on other
interfaces). Needs `pip install -e '.[dist]'`. Dask retries a task whose worker died on
another worker; a task that keeps killing workers comes back as KilledWorker.
"""
from __future__ import annotations

from memsim.core.errors import ConfigError
from memsim.sweeps.executors.base import EXECUTORS, Executor


@EXECUTORS.register("dask")
class DaskExecutor(Executor):
    """dask.distributed Client over a LocalCluster or a given scheduler."""

    def __init__(self, workers: int, scheduler: str | None = None):
        super().__init__(workers, scheduler)
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("the dask executor needs dask[distributed]", key_path="executor",
                              allowed="pip install -e '.[dist]', or --executor local") from None
        self._cluster = None
        if scheduler is None:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, host="127.0.0.1",
                                         dashboard_address="127.0.0.1:0",
                                         worker_dashboard_address=None)
        self._client = Client(self._cluster if scheduler is None else scheduler)

    def run(self, fn, args_list):
        from dask.distributed import as_completed

        futures = [self._client.submit(fn, *args, pure=False) for args in args_list]
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            try:
                yield index[future.key], future.result()
            except Exception as exc:  # noqa: BLE001 - reported per task, the sweep goes on
                yield index[future.key], exc

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
