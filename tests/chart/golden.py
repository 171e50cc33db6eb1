"""Regenerate the golden counter chart: `python -m tests.chart.golden` (then review the diff)."""

from __future__ import annotations

import shutil

from pulumi_sconify.engine.chart import WorkloadType, chart_files
from tests.support.chart import GOLDEN, counter


def main() -> None:
    shutil.rmtree(GOLDEN, ignore_errors=True)
    for name, content in chart_files(counter(), WorkloadType.JOB).items():
        path = GOLDEN / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


if __name__ == "__main__":
    main()
