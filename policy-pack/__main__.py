"""The pulumi-sconify policy pack: ``pulumi preview --policy-pack policy-pack``.

The rules live in :mod:`pulumi_sconify.components.policies`, where they are tested.
"""

from pulumi_policy import Policy, PolicyPack

from pulumi_sconify.components.policies import POLICIES

policies: list[Policy] = list(POLICIES)
PolicyPack(name="pulumi-sconify", policies=policies)
