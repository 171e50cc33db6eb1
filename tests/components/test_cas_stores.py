"""Where the components put the CAS's state, read from what the programs register under the strict mocks.

AKS (the production stack): Azure's zone-redundant PostgreSQL, private to the cluster's network, verified
by name and root; the node pools across zones; the CAS as replicas with no claim, spread over zones; the
database and every key protected. Minikube, when asked: a PostgreSQL in the cluster that only CAS pods
reach. Everywhere: a recovery key, made by Pulumi unless the owner gives one, and secrets kept secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from pulumi_sconify.components.aks import POSTGRES_DELEGATION
from pulumi_sconify.components.azure_postgres import AZURE_POSTGRES_ROOTS
from pulumi_sconify.engine.cas.state.recovery import create_recovery_key
from tests.support.pulumi.program_runner import MOCK_RECOVERY_PUBLIC_KEY, SECRET, plain
from tests.support.pulumi.programs import Run, plaintext_secrets, program_run, root_program_copy, run_program

KUBERNETES_VERSION = "1.33"
pytestmark = pytest.mark.slow


def with_config(program: Path, stack: str, **changes: str) -> Path:
    stack_file = program / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"].update({f"sconify-counter:{key}": value for key, value in changes.items()})
    stack_file.write_text(yaml.safe_dump(document))
    return program


def inputs(run: Run, name: str, kind: str | None = None) -> dict[str, Any]:
    return dict(plain(run.by_name(name, kind)["inputs"]))


def cas_container(run: Run) -> dict[str, Any]:
    (container,) = inputs(run, "cas-statefulset")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def environment(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET in value


def test_on_aks_the_cas_keeps_its_state_in_a_zone_redundant_private_database() -> None:
    run = program_run("root", "aks")
    server = run.by_name("cas-store-server", "Server")
    given = plain(server["inputs"])
    assert given["highAvailability"]["mode"] == "ZoneRedundant"
    assert given["highAvailability"]["standbyAvailabilityZone"] != given["availabilityZone"]
    assert given["sku"]["tier"] == "GeneralPurpose"
    assert given["backup"] == {"backupRetentionDays": 35, "geoRedundantBackup": "Enabled"}
    # Private access only: in the cluster's delegated subnet, named in the zone linked to its network.
    assert given["network"] == {
        "delegatedSubnetResourceId": "cluster-databases-id",
        "privateDnsZoneArmResourceId": "cluster-database-dns-id",
        "publicNetworkAccess": "Disabled",
    }
    subnet = inputs(run, "cluster-databases", "Subnet")
    assert subnet["delegations"] == [{"name": "postgres", "serviceName": POSTGRES_DELEGATION}]
    zone = inputs(run, "cluster-database-dns", "PrivateZone")
    assert zone["privateZoneName"].endswith(".private.postgres.database.azure.com")
    link = inputs(run, "cluster-database-dns-link", "VirtualNetworkLink")
    assert link["virtualNetwork"] == {"id": "cluster-network-id"} and link["registrationEnabled"] is False
    assert {run.urn_of("cluster-database-dns"), run.urn_of("cluster-database-dns-link")} <= set(
        server["dependencies"]
    )  # created once its name resolves in the network
    # The server and its password outlive a `pulumi destroy` of the stack (the AKS stack protects).
    assert server["protect"] and server["retain_on_delete"]
    assert run.by_name("cas-store-password")["protect"]
    assert run.by_name("cas-store-database", "Database")["retain_on_delete"]


def test_on_aks_the_node_pools_span_the_zones_in_the_clusters_network() -> None:
    run = program_run("root", "aks")
    cluster = inputs(run, "cluster-cluster", "ManagedCluster")
    for pool in cluster["agentPoolProfiles"]:
        assert pool["availabilityZones"] == ["1", "2", "3"], pool["name"]
        assert pool["vnetSubnetID"] == "cluster-nodes-id", pool["name"]
    confidential = next(p for p in cluster["agentPoolProfiles"] if p["name"] == "confidential")
    assert confidential["count"] >= 2  # a node in a second zone for the second CAS replica
    # A policy engine enforces the NetworkPolicies (attestation port, database); without one AKS ignores them.
    assert cluster["networkProfile"]["networkPolicy"] == "cilium"
    grant = inputs(run, "cluster-cluster-network-contributor", "RoleAssignment")
    assert grant["scope"] == "cluster-nodes-id" and grant["principalId"] == "cluster"


def test_on_aks_the_cas_runs_as_replicas_with_no_state_of_their_own() -> None:
    run = program_run("root", "aks")
    spec = inputs(run, "cas-statefulset")["spec"]
    assert spec["replicas"] == 2
    assert "volumeClaimTemplates" not in spec  # no zonal disk holds a replica to its zone
    pod = spec["template"]["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    assert (
        spread["topology.kubernetes.io/zone"]["labelSelector"]["matchLabels"]
        == spec["selector"]["matchLabels"]
    )
    assert "kubernetes.io/hostname" in spread
    budget = inputs(run, "cas-disruption-budget")["spec"]
    assert budget["minAvailable"] == 1


def test_on_aks_the_cas_verifies_the_database_by_name_and_azures_roots() -> None:
    run = program_run("root", "aks")
    container = cas_container(run)
    url = container["args"][container["args"].index("--store") + 1]
    assert (
        url
        == "postgresql://sconifycas@cas-store-server-x1.postgres.database.azure.com:5432/cas?sslmode=verify-full"
    )
    env = environment(container)
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGSSLROOTCERT"] == "/etc/sconify-cas/store-ca/ca.pem"
    roots = inputs(run, "cas-store-ca", "ConfigMap")["data"]["ca.pem"]
    assert roots == AZURE_POSTGRES_ROOTS
    names = {c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(roots.encode())}
    assert any("DigiCert Global Root G2" in n for n in names)
    assert any("Microsoft RSA Root Certificate Authority 2017" in n for n in names)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["store-ca"]["mountPath"] == "/etc/sconify-cas/store-ca"


def test_the_database_password_is_one_secret_from_azure_to_the_cas() -> None:
    run = program_run("root", "aks")
    server = run.by_name("cas-store-server", "Server")["inputs"]
    assert is_secret(server["administratorLoginPassword"])
    password = plain(server["administratorLoginPassword"])
    assert password.startswith("PASSWORD-SECRET-")
    cas_secret = run.by_name("cas-secret")["inputs"]
    assert is_secret(cas_secret["stringData"])
    assert plain(cas_secret["stringData"])["store-password"] == password
    assert environment(cas_container(run))["PGPASSWORD"] == {
        "secretKeyRef": {"name": "sconify-cas-keys", "key": "store-password"}
    }
    for registration in run.registrations:
        assert plaintext_secrets(registration["inputs"]) == [], registration["name"]


@pytest.mark.parametrize(("stack", "protected"), [("aks", True), ("dev", False)])
def test_pulumi_makes_the_recovery_key_and_exports_it_as_a_secret(stack: str, protected: bool) -> None:
    run = program_run("root", stack)
    recovery = run.by_name("cas-recovery", "CasRecoveryKey")
    assert recovery["protect"] is protected  # the AKS stack protects what decrypts every volume
    assert "privateKeyPem" in recovery["additional_secret_outputs"]
    key_map = inputs(run, "cas-recovery-key", "ConfigMap")
    assert key_map["data"]["recovery-key.pub.pem"] == MOCK_RECOVERY_PUBLIC_KEY
    assert run.exports["casRecoveryKey"] == {"secret": True, "value": "RECOVERY-KEY-SECRET"}
    arguments = cas_container(run)["args"]
    assert (
        arguments[arguments.index("--recovery-key") + 1] == "/etc/sconify-cas/recovery/recovery-key.pub.pem"
    )


def test_a_recovery_key_given_keeps_the_private_key_out_of_the_state(tmp_path: Path) -> None:
    recovery = create_recovery_key(tmp_path / "owner")
    (tmp_path / "program").mkdir()
    program = with_config(
        root_program_copy(tmp_path / "program"), "dev", casRecoveryKey=recovery.public.read_text()
    )
    run = run_program(program, "dev")
    assert not run.of_type(":CasRecoveryKey")
    assert "casRecoveryKey" not in run.exports
    key_map = inputs(run, "cas-recovery-key", "ConfigMap")
    assert key_map["data"]["recovery-key.pub.pem"] == recovery.public.read_text()


def test_minikube_asks_for_a_database_in_the_cluster_that_only_the_cas_reaches(tmp_path: Path) -> None:
    run = run_program(with_config(root_program_copy(tmp_path), "dev", casStore="in-cluster"), "dev")
    server = inputs(run, "cas-store-statefulset")
    assert server["metadata"]["namespace"] == "sconify-cas-store"
    assert server["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    (postgres,) = server["spec"]["template"]["spec"]["containers"]
    assert environment(postgres)["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "sconify-cas-store", "key": "password"}
    }
    # The database admits the CAS's pods, from the CAS's namespace, and nothing else.
    policy = inputs(run, "cas-store-network-policy")["spec"]
    assert policy["podSelector"]["matchLabels"] == server["spec"]["selector"]["matchLabels"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    cas = inputs(run, "cas-statefulset")
    cas_labels = cas["spec"]["template"]["metadata"]["labels"]
    assert peer["podSelector"]["matchLabels"].items() <= cas_labels.items()
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": cas["metadata"]["namespace"]
    }
    # The CAS connects as `cas` to the server's Service once it is ready, with the generated password.
    arguments = cas_container(run)["args"]
    assert arguments[arguments.index("--store") + 1] == (
        "postgresql://cas@sconify-cas-store.sconify-cas-store.svc:5432/cas"
    )
    assert run.urn_of("cas-store-statefulset") in run.by_name("cas-statefulset")["dependencies"]
    password = run.by_name("cas-store-secret")["inputs"]
    assert is_secret(password["stringData"])
    assert (
        plain(run.by_name("cas-secret")["inputs"])["stringData"]["store-password"]
        == plain(password["stringData"])["password"]
    )
    assert inputs(run, "cas-statefulset")["spec"]["replicas"] == 2
    for registration in run.registrations:
        assert plaintext_secrets(registration["inputs"]) == [], registration["name"]
        if registration["type"].startswith("kubernetes:"):
            kubernetes_validate.validate(plain(registration["inputs"]), KUBERNETES_VERSION, strict=True)


def test_a_database_given_by_url_is_verified_against_the_roots_given(tmp_path: Path) -> None:
    roots = AZURE_POSTGRES_ROOTS
    url = "postgresql://cas@db.example.com:5432/cas"
    program = with_config(
        root_program_copy(tmp_path), "dev", casStore=url, casStorePassword="SECRET-db", casStoreCa=roots
    )
    run = run_program(program, "dev")
    assert inputs(run, "cas-store-ca", "ConfigMap")["data"]["ca.pem"] == roots
    env = environment(cas_container(run))
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"].endswith("/ca.pem")


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("mysql://db/cas", "casStore 'mysql://db/cas': expected sqlite, in-cluster, azure"),
        ("azure", "casStore azure: needs the aks platform"),
        ("postgresql://cas:pw@db/cas", "holds a password; give it as store.password"),
    ],
)
def test_a_store_the_program_cannot_make_is_refused_by_name(tmp_path: Path, store: str, message: str) -> None:
    from tests.support.pulumi.programs import program_failure

    error, run = program_failure(
        with_config(root_program_copy(tmp_path), "dev", casStore=store, casStorePassword="SECRET-x"), "dev"
    )
    assert message in error
    assert not run.of_type(":CasDeployment")


def test_the_owners_granted_room_reach_the_cas(tmp_path: Path) -> None:
    owner = "ab" * 32
    program = with_config(root_program_copy(tmp_path), "dev")
    stack_file = program / "Pulumi.dev.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"]["sconify-counter:casGrantedIdentities"] = [owner]
    stack_file.write_text(yaml.safe_dump(document))
    arguments = cas_container(run_program(program, "dev"))["args"]
    assert arguments[arguments.index("--grant-identity") + 1] == owner


def test_a_grant_that_is_no_key_hash_is_refused_by_the_component() -> None:
    from pulumi_sconify.components.cas import CasDeploymentArgs

    with pytest.raises(ValueError, match="granted_identities: 'me': expected an identity's key hash"):
        CasDeploymentArgs(image="cas", external_host="cas.example", granted_identities=["me"])
