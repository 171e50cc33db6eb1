"""Helm charts for confidential services, and the workload model they share with the Pulumi components.

- :mod:`.spec` — the service a chart is for (from ``sconify image --json``);
- :mod:`.values` — every value, defined once (values.yaml, values.schema.json and README come from it);
- :mod:`.objects` — the Kubernetes objects for given values (the workload model);
- :mod:`.templates` and :mod:`.generate` — the chart itself.
"""

from .generate import chart_files, defaults, write_chart
from .objects import fullname, kubernetes_objects, merged_values
from .spec import ChartSpecError, Mount, MountKind, ServiceSpec, WorkloadType, service_from_sconifier_json
from .values import ValueDefinition, value_definitions, values_schema, volume_key

__all__ = [
    "ChartSpecError",
    "Mount",
    "MountKind",
    "ServiceSpec",
    "ValueDefinition",
    "WorkloadType",
    "chart_files",
    "defaults",
    "fullname",
    "kubernetes_objects",
    "merged_values",
    "service_from_sconifier_json",
    "value_definitions",
    "values_schema",
    "volume_key",
    "write_chart",
]
