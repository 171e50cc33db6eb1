"""Run the ``sconify`` provider plugin: ``python DIR ENGINE_ADDRESS`` (as Pulumi's Python language host
runs a plugin directory), or ``python -m pulumi_sconify.provider.plugin ENGINE_ADDRESS``."""

from pulumi_sconify.provider.plugin import main

main()
