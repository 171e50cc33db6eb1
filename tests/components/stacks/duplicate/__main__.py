"""Two children with the same fixed name under two components of one type: one URN twice, which
``pulumi up`` refuses, and so must the monitor the tests run programs under."""

from __future__ import annotations

import pulumi
import pulumi_command as command

for name in ("first", "second"):
    parent = pulumi.ComponentResource("test:index:Twin", name)
    command.local.Command("child", create="true", opts=pulumi.ResourceOptions(parent=parent))
