"""Pulumi component resources that compose a confidential stateful service.

Components hold no cryptography and speak no HTTP: they wire the resources of
:mod:`pulumi_sconify.provider.resources` and the Kubernetes and Azure providers together.
"""
