"""pulumi-sconify: confidential stateful services from one Pulumi program.

The distribution has two halves, each a subpackage:

- :mod:`pulumi_sconify.provider` — the open engine (policy, file-system protection, images, CAS,
  runtime, charts) and the Pulumi resource providers over it. The engine never imports Pulumi, so
  the runtime that goes into confidential images carries nothing of the build machine.
- :mod:`pulumi_sconify.components` — the Pulumi component resources a program composes.
"""

from pulumi_sconify.provider.version import __version__

__all__ = ["__version__"]
