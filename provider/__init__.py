"""The open engine of pulumi-sconify and the Pulumi resource providers over it.

Everything below this package except :mod:`pulumi_sconify.provider.resources` is free of Pulumi:
policy, fspf, image, cas, runtime and chart are plain Python libraries.
"""
