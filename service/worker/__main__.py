"""``python -m service.worker``: one worker with the settings from ``VIDREC_*`` variables."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from service.settings import Settings, settings_problems
from service.worker.process import run_worker


def main() -> int:
    """Runs a worker; 2 when the settings do not validate."""
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"vidrec worker: bad settings: {settings_problems(exc)}", file=sys.stderr)
        return 2
    return run_worker(settings)


if __name__ == "__main__":
    sys.exit(main())
