"""The worker process: clip jobs and live sessions on the loaded models, until SIGTERM.

``python -m service.worker`` (or ``vidrec worker``) runs :func:`run_worker` with the settings
from ``VIDREC_*`` variables. Modules: :mod:`~service.worker.process` (the loop, signals, drain),
:mod:`~service.worker.clips` (clip batches), :mod:`~service.worker.sessions` (sessions, steps,
failover), :mod:`~service.worker.sources` (RTSP readers), :mod:`~service.worker.heartbeat`,
:mod:`~service.worker.answers` (the JSON it writes).
"""

from service.worker.process import Worker, run_worker

__all__ = ["Worker", "run_worker"]
