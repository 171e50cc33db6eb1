"""``sconify chart``: a Helm chart from the sconifier's ``--json`` output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..chart import ChartSpecError, WorkloadType, service_from_sconifier_json, write_chart
from .common import EXIT_INVALID, CliError, read_bounded

MAX_INPUT_BYTES = 4 * 1024 * 1024


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "chart",
        help="generate a Helm chart for a confidential service",
        description="Helm charts for confidential services.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    generate = commands.add_parser("generate", help="write OUT/<service>/ from `sconify image --json` output")
    generate.add_argument("file", metavar="FILE", help="the JSON that `sconify image --json` printed, or -")
    generate.add_argument(
        "--out", "--k8s-helm-output-dir", dest="out", type=Path, required=True, metavar="DIR"
    )
    generate.add_argument(
        "--workload-type",
        "--k8s-helm-workload-type",
        dest="workload",
        choices=[w.value for w in WorkloadType],
        default=WorkloadType.JOB.value,
    )
    generate.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    try:
        data = json.loads(read_bounded(args.file, MAX_INPUT_BYTES))
        if not isinstance(data, dict):
            raise ChartSpecError("expected a JSON object")
        spec = service_from_sconifier_json(data)
    except (ValueError, ChartSpecError) as error:
        raise CliError(f"{args.file}: {error}", EXIT_INVALID) from None
    directory = write_chart(spec, WorkloadType(args.workload), args.out)
    print(directory)
    return 0
