"""``AzurePostgres``: the CAS's production store on AKS — Azure Database for PostgreSQL Flexible Server,
zone-redundant, reachable only from the cluster's virtual network.

With it the CAS survives a zone: the server keeps a synchronous standby in a second zone and fails over to
it (no committed transaction lost: Azure's zone-redundant HA commits on both), the CAS replicas keep no
state of their own (their data directory is an ``emptyDir``), and the cluster's node pools span the zones.
Backups are Azure's (point-in-time restore, geo-redundant) besides ``sconify cas backup``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import pulumi
import pulumi_azure_native as azure
import pulumi_random as random

from ..engine.chart.cas_objects import POSTGRES_PORT
from ..engine.errors import ArgumentsError
from .naming import Children
from .postgres import PostgresStore

AZURE_POSTGRES_ROOTS = resources.files(__package__).joinpath("anchors/azure-postgres-roots.pem").read_text()
"""The roots Azure's PostgreSQL server certificates chain to (Microsoft's list; Debian's copies): the CAS
verifies the server against them and its name (``verify-full``)."""
ADMINISTRATOR = "sconifycas"
DATABASE = "cas"
STORAGE_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767)
"""The sizes (GiB) a flexible server's storage may have."""
_SKU = re.compile(r"Standard_[A-Z]\d+[a-z]*s_v\d")


@dataclass(frozen=True)
class AzureDatabaseNetwork:
    """Where a private database server goes in a cluster's network (``AksCluster.database_network``)."""

    resource_group_name: pulumi.Input[str]
    """The cluster's resource group."""
    location: str
    """The cluster's Azure region."""
    subnet_id: pulumi.Input[str]
    """A subnet delegated to ``Microsoft.DBforPostgreSQL/flexibleServers``, in the cluster's network."""
    private_dns_zone_id: pulumi.Input[str]
    """A private DNS zone ``*.private.postgres.database.azure.com`` linked to the cluster's network."""
    zones: tuple[str, ...]
    """The availability zones the cluster spans (empty in a region without zones)."""


@dataclass(frozen=True, kw_only=True)
class AzurePostgresArgs:
    network: AzureDatabaseNetwork
    """``AksCluster.database_network``."""
    sku_name: str = "Standard_D2ds_v5"
    """The compute size; zone-redundant HA needs the General Purpose or Memory Optimized tier."""
    tier: str = "GeneralPurpose"
    """``GeneralPurpose`` or ``MemoryOptimized`` (``Burstable`` has no high availability)."""
    version: str = "16"
    """The PostgreSQL major version."""
    storage_size_gb: int = 32
    """The server's storage (GiB), grown automatically when it fills."""
    zone_redundant: bool = True
    """A synchronous standby in another zone, failed over to automatically. Off only where the region
    has no zones, and then the CAS does not survive the loss of the server's zone."""
    backup_retention_days: int = 35
    """Azure's point-in-time restore window, 7 to 35 days."""
    geo_redundant_backup: bool = True
    """Azure's backups also kept in the paired region (a region's loss)."""
    protect: bool = True
    """Pulumi refuses to delete the server and its password, and a ``pulumi destroy`` leaves the server in
    Azure (``retain_on_delete``): it holds every volume's key and latest state. Lift the protection and
    delete it in Azure to really delete."""

    def __post_init__(self) -> None:
        problems = []
        if self.tier not in ("GeneralPurpose", "MemoryOptimized", "Burstable"):
            problems.append(f"tier {self.tier!r}: expected GeneralPurpose, MemoryOptimized or Burstable")
        if self.zone_redundant and self.tier == "Burstable":
            problems.append(
                "zone_redundant: Burstable servers have no high availability; pick GeneralPurpose"
            )
        if self.zone_redundant and len(self.network.zones) < 2:
            problems.append(
                "zone_redundant: the cluster spans fewer than two availability zones "
                f"({list(self.network.zones)}); set AksClusterArgs.zones, or zone_redundant=False"
            )
        if not _SKU.fullmatch(self.sku_name):
            problems.append(f"sku_name {self.sku_name!r}: expected an Azure VM size like Standard_D2ds_v5")
        if self.storage_size_gb not in STORAGE_SIZES:
            problems.append(f"storage_size_gb {self.storage_size_gb}: one of {list(STORAGE_SIZES)}")
        if not 7 <= self.backup_retention_days <= 35:
            problems.append(f"backup_retention_days {self.backup_retention_days}: Azure allows 7 to 35")
        ArgumentsError.raise_for("AzurePostgresArgs", problems)


class AzurePostgres(pulumi.ComponentResource):
    """A flexible server with private access only (in the cluster's delegated subnet, named in its
    private DNS zone), password authentication with a generated password, and one database for the
    CAS. :attr:`store` is what ``CasDeploymentArgs.store`` takes."""

    store: PostgresStore
    """What ``CasDeploymentArgs.store`` takes: the URL (verify-full), the password, Azure's roots."""
    server_name: pulumi.Output[str]
    """The flexible server's name."""
    fully_qualified_domain_name: pulumi.Output[str]
    """The server's name in the cluster's private DNS zone."""

    def __init__(
        self, resource_name: str, args: AzurePostgresArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("sconify:index:AzurePostgres", resource_name, None, opts)
        children = Children(self, resource_name)
        network = args.network
        kept = {"protect": True, "retain_on_delete": True} if args.protect else {}
        password = random.RandomPassword(
            *children("password", protect=args.protect or None),
            length=32,
            special=False,  # Azure wants three of four classes; letters and digits are URL- and shell-safe
            min_upper=2,
            min_lower=2,
            min_numeric=2,
        )
        postgresql = azure.dbforpostgresql
        zones = network.zones
        server = postgresql.Server(
            *children("server", **kept),
            resource_group_name=network.resource_group_name,
            location=network.location,
            version=args.version,
            sku=postgresql.SkuArgs(name=args.sku_name, tier=args.tier),
            storage=postgresql.StorageArgs(storage_size_gb=args.storage_size_gb, auto_grow="Enabled"),
            administrator_login=ADMINISTRATOR,
            administrator_login_password=password.result,
            auth_config=postgresql.AuthConfigArgs(
                password_auth="Enabled",  # noqa: S106 - a switch, not a password
                active_directory_auth="Disabled",
            ),
            availability_zone=zones[0] if zones else None,
            high_availability=postgresql.HighAvailabilityArgs(
                mode="ZoneRedundant", standby_availability_zone=zones[1]
            )
            if args.zone_redundant
            else postgresql.HighAvailabilityArgs(mode="Disabled"),
            network=postgresql.NetworkArgs(
                delegated_subnet_resource_id=network.subnet_id,
                private_dns_zone_arm_resource_id=network.private_dns_zone_id,
                public_network_access="Disabled",
            ),
            backup=postgresql.BackupArgs(
                backup_retention_days=args.backup_retention_days,
                geo_redundant_backup="Enabled" if args.geo_redundant_backup else "Disabled",
            ),
        )
        database = postgresql.Database(
            *children("database", **kept),
            resource_group_name=network.resource_group_name,
            server_name=server.name,
            database_name=DATABASE,
            charset="UTF8",
            collation="en_US.utf8",
        )
        self.server_name = server.name
        self.fully_qualified_domain_name = server.fully_qualified_domain_name
        url = pulumi.Output.all(server.fully_qualified_domain_name, database.name).apply(
            lambda parts: (
                f"postgresql://{ADMINISTRATOR}@{parts[0]}:{POSTGRES_PORT}/{parts[1]}?sslmode=verify-full"
            )
        )
        self.store = PostgresStore(
            url=url, password=pulumi.Output.secret(password.result), ca_certificate=AZURE_POSTGRES_ROOTS
        )
        self.register_outputs(
            {"server_name": self.server_name, "fully_qualified_domain_name": self.fully_qualified_domain_name}
        )
