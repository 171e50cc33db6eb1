"""Components made through the plugin's Construct, as for a program in another language: the engine's
request (inputs in wire form, a Kubernetes provider passed in ``providers``, secrets marked) goes to the
plugin over gRPC; the plugin registers the component and its children with the strict monitor served over
gRPC; the answer carries the component's outputs, secrets still marked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import kubernetes_validate
import pytest
from pulumi.output import Unknown

from tests.support.paths import REPOSITORY
from tests.support.pulumi.monitor import MonitorServer
from tests.support.pulumi.plugin_host import UNKNOWN, PluginHost, from_struct, is_secret, secret
from tests.support.pulumi.program_runner import MOCK_CA_CERTIFICATE, plain
from tests.support.pulumi.programs import plaintext_secrets

pytestmark = pytest.mark.slow
KUBERNETES_VERSION = "1.33"


@pytest.fixture(scope="module")
def host() -> Iterator[PluginHost]:
    with PluginHost() as running:
        yield running


@pytest.fixture
def monitor() -> Iterator[MonitorServer]:
    with MonitorServer() as served:
        yield served


def children_of(monitor: MonitorServer, urn: str) -> list[dict[str, Any]]:
    """Every registration under ``urn``, at any depth."""
    found, parents = [], {urn}
    for registration in monitor.monitor.registrations:  # registered parents first (the engine's rule)
        if registration["parent"] in parents:
            found.append(registration)
            parents.add(registration["urn"])
    return found


def test_a_cas_deployment_made_for_another_language(host: PluginHost, monitor: MonitorServer) -> None:
    kubernetes = monitor.provider("kubernetes", "cluster")
    response = host.construct(
        monitor.address,
        "CasDeployment",
        "cas",
        {
            "image": "registry.example/sconify/cas@sha256:" + "a" * 64,
            "externalHost": "cas.example.com",
            "replicas": 0,
            "placement": {"nodeSelector": {"sconify.io/confidential": "true"}, "tolerations": []},
        },
        parent=monitor.root_urn,
        providers={"kubernetes": kubernetes},
    )
    assert monitor.servicer.errors == []
    assert response.urn.endswith("sconify:index:CasDeployment::cas")
    state = from_struct(response.state)
    assert state["address"] == "cas.example.com:30081"
    assert state["attestationAddress"] == "sconify-cas.sconify-cas.svc:18765"
    assert state["caCertificate"] == MOCK_CA_CERTIFICATE
    assert is_secret(state["recoveryPrivateKey"])
    assert state["namespace"] == "sconify-cas"
    children = children_of(monitor, response.urn)
    kinds = {r["type"] for r in children}
    assert {
        "sconify:index:CasKeys",
        "sconify:index:CasRecoveryKey",
        "kubernetes:apps/v1:StatefulSet",
    } <= kinds
    for registration in children:
        assert plaintext_secrets(registration["inputs"]) == [], registration["name"]
        if registration["type"].startswith("kubernetes:"):
            assert registration["provider"].startswith(kubernetes.rsplit("::", 1)[0]), registration["name"]
            kubernetes_validate.validate(plain(registration["inputs"]), KUBERNETES_VERSION, strict=True)
    statefulset = next(r for r in children if r["type"] == "kubernetes:apps/v1:StatefulSet")
    pod = plain(statefulset["inputs"])["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"sconify.io/confidential": "true"}


def test_a_service_made_for_another_language_attests_to_the_cas_it_is_given(
    host: PluginHost, monitor: MonitorServer
) -> None:
    kubernetes = monitor.provider("kubernetes", "cluster")
    response = host.construct(
        monitor.address,
        "ConfidentialStatefulService",
        "counter",
        {
            "nativeImage": "registry.example/counter@sha256:" + "b" * 64,
            "target": "registry.example/counter-confidential:1",
            "command": "python3 /code/app.py",
            "cas": {
                "address": "cas.example.com:30081",
                "attestationAddress": "sconify-cas.sconify-cas.svc:18765",
                "caCertificate": MOCK_CA_CERTIFICATE,
            },
            "namespace": "counter-ts",
            "service": "counter",
            "dirs": ["/code"],
            "volumes": [{"name": "V1", "path": "/V1", "size": "1Gi"}],
            "jobRuns": 2.0,  # numbers arrive as floats
            "storage": {"storageClass": "standard", "accessMode": "ReadWriteOnce"},
            "registryAuth": secret('{"auths": {}}'),
        },
        parent=monitor.root_urn,
        providers={"kubernetes": kubernetes},
    )
    assert monitor.servicer.errors == []
    state = from_struct(response.state)
    assert state["image"].startswith("registry.example/counter-confidential@sha256:")
    assert state["sessionName"] == "counter-ts/counter-session"
    children = children_of(monitor, response.urn)
    kinds = [r["type"] for r in children]
    assert kinds.count("kubernetes:batch/v1:Job") == 2
    assert "sconify:index:SconifiedImage" in kinds and "sconify:index:CasSession" in kinds
    image = next(r for r in children if r["type"] == "sconify:index:SconifiedImage")
    assert plain(image["inputs"])["casCaCertificate"] == MOCK_CA_CERTIFICATE
    assert is_secret(image["inputs"]["registryAuth"])  # the secret input stayed secret through Construct
    for registration in children:
        assert plaintext_secrets(registration["inputs"]) == [], registration["name"]


def test_a_minikube_cluster_for_another_language_gives_what_the_others_take(
    host: PluginHost, monitor: MonitorServer
) -> None:
    """A program in another language makes its own Kubernetes provider from ``kubeconfig`` (a secret)
    and passes ``storage`` and ``placement`` on to its services as they are."""
    response = host.construct(
        monitor.address, "MinikubeCluster", "cluster", {"profile": "sconify-ts", "cpus": 2.0},
        parent=monitor.root_urn,
    )  # fmt: skip
    assert monitor.servicer.errors == []
    state = from_struct(response.state)
    assert is_secret(state["kubeconfig"])
    assert state["storage"] == {"storageClass": "standard", "accessMode": "ReadWriteOnce"}
    assert state["placement"]["nodeSelector"] == {} and state["nodeAddress"] == "192.168.49.2"
    assert "provider" not in state  # a Python object: see provider/plugin/construct.py, PYTHON_ONLY
    commands = [r for r in children_of(monitor, response.urn) if r["type"] == "command:local:Command"]
    assert any("minikube start --profile sconify-ts" in plain(r["inputs"])["create"] for r in commands)


def test_a_preview_with_unknown_inputs_gives_unknown_outputs(host: PluginHost) -> None:
    """``pulumi preview`` of a program whose CAS image is not built yet: the component is made, its
    children carry the unknown, and what depends on the CAS being up is unknown too."""
    with MonitorServer(preview=True) as monitor:
        kubernetes = monitor.provider("kubernetes", "cluster")
        response = host.construct(
            monitor.address, "CasDeployment", "cas", {"image": UNKNOWN, "externalHost": "cas.example.com"},
            parent=monitor.root_urn, providers={"kubernetes": kubernetes}, preview=True,
        )  # fmt: skip
        assert monitor.servicer.errors == []
        state = from_struct(response.state)
        assert state["address"] == UNKNOWN  # known once the StatefulSet is ready
        assert state["attestationAddress"] == "sconify-cas.sconify-cas.svc:18765"
        statefulset = next(
            r for r in children_of(monitor, response.urn) if r["type"] == "kubernetes:apps/v1:StatefulSet"
        )
        (container,) = statefulset["inputs"]["spec"]["template"]["spec"]["containers"]
        assert isinstance(container["image"], Unknown)


def test_bad_component_inputs_are_refused_by_name(host: PluginHost, monitor: MonitorServer) -> None:
    with pytest.raises(grpc.RpcError, match="replicas: SQLite has one writer"):
        host.construct(
            monitor.address,
            "CasDeployment",
            "cas",
            {"image": "i", "externalHost": "h", "replicas": 2},
            parent=monitor.root_urn,
        )
    with pytest.raises(grpc.RpcError, match="CasDeploymentArgs: no input colour"):
        host.construct(
            monitor.address,
            "CasDeployment",
            "cas2",
            {"image": "i", "externalHost": "h", "colour": "blue"},
            parent=monitor.root_urn,
        )
    with pytest.raises(grpc.RpcError, match="sconify:index:Nothing: not a component of the sconify package"):
        host.construct(monitor.address, "Nothing", "x", {}, parent=monitor.root_urn)
    assert not any(r["type"] == "sconify:index:CasDeployment" for r in monitor.monitor.registrations)


EXAMPLES = REPOSITORY / "examples"
PLACEMENT = {"nodeSelector": {"sconify.io/confidential": "true"}, "tolerations": []}
EVERY_COMPONENT: dict[str, tuple[dict[str, Any], set[str]]] = {
    "AksCluster": ({"location": "westeurope", "confidentialNodeCount": 2.0}, {"kubeconfig", "placement"}),
    "AzurePostgres": (
        {
            "network": {
                "resourceGroupName": "group", "location": "westeurope", "subnetId": "subnet",
                "privateDnsZoneId": "zone", "zones": ["1", "2", "3"],
            }
        },
        {"store", "fullyQualifiedDomainName"},
    ),
    "CasDeployment": ({"image": "registry.example/cas:1", "externalHost": "cas.example.com"}, {"address"}),
    "ConfidentialStatefulService": (
        {
            "nativeImage": "registry.example/counter@sha256:" + "c" * 64, "target": "registry.example/c:1",
            "command": "python3 /code/app.py", "namespace": "ns-x",
            "volumes": [{"name": "V1", "path": "/V1"}],
            "cas": {
                "address": "cas:8081", "attestationAddress": "cas:18765",
                "caCertificate": MOCK_CA_CERTIFICATE,
            },
        },
        {"image", "mrenclave", "sessionHash"},
    ),
    "DockerfileImage": ({"context": str(EXAMPLES / "counter"), "registry": "192.168.49.2:5000"}, {"image"}),
    "EncryptedVolume": (
        {
            "claimName": "counter-volumev1", "volume": "V1", "session": "ns-x/session",
            "storage": {"storageClass": "standard", "accessMode": "ReadWriteOnce"},
        },
        {"claimName", "volume"},
    ),
    "ExternalCas": (
        {"address": "cas.example.com:8081", "caCertificate": MOCK_CA_CERTIFICATE}, {"attestationAddress"}
    ),
    "InClusterPostgres": ({"placement": PLACEMENT}, {"store"}),
    "MinikubeCluster": ({}, {"kubeconfig", "registry"}),
}  # fmt: skip


@pytest.mark.parametrize("component", sorted(EVERY_COMPONENT))
def test_every_component_can_be_made_for_another_language(
    host: PluginHost, monitor: MonitorServer, component: str
) -> None:
    inputs, expected_outputs = EVERY_COMPONENT[component]
    name = f"my-{component.lower()[:8]}"
    kubernetes = monitor.provider("kubernetes", "cluster")
    response = host.construct(
        monitor.address, component, name, inputs,
        parent=monitor.root_urn, providers={"kubernetes": kubernetes},
    )  # fmt: skip
    assert monitor.servicer.errors == []
    assert response.urn.endswith(f"sconify:index:{component}::{name}")
    assert expected_outputs <= set(from_struct(response.state))
    children = children_of(monitor, response.urn)
    assert children or component == "ExternalCas"  # it names a CAS that exists: nothing to make
    for registration in children:
        assert plaintext_secrets(registration["inputs"]) == [], registration["name"]
        if registration["type"].startswith("kubernetes:"):
            kubernetes_validate.validate(plain(registration["inputs"]), KUBERNETES_VERSION, strict=True)


def test_the_test_covers_every_component() -> None:
    from pulumi_sconify.provider.plugin.construct import COMPONENTS

    assert set(EVERY_COMPONENT) == set(COMPONENTS)


def test_objects_passed_as_other_components_outputs_become_their_dataclasses(
    host: PluginHost, monitor: MonitorServer
) -> None:
    """A program passes ``storage: cluster.storage`` (an output of another component, with its
    dependency): the plugin receives an Output, and makes it the dataclass the component reads."""
    kubernetes = monitor.provider("kubernetes", "cluster")
    cluster = monitor.root_urn.replace(
        "pulumi:pulumi:Stack", "pulumi:pulumi:Stack$sconify:index:MinikubeCluster"
    )
    inputs = dict(EVERY_COMPONENT["ConfidentialStatefulService"][0])
    inputs["storage"] = {"storageClass": "standard", "accessMode": "ReadWriteOnce"}
    inputs["placement"] = {"nodeSelector": {"pool": "confidential"}, "tolerations": []}
    response = host.construct(
        monitor.address, "ConfidentialStatefulService", "counter", inputs,
        parent=monitor.root_urn, providers={"kubernetes": kubernetes},
        dependencies={"storage": [cluster], "placement": [cluster]},
    )  # fmt: skip
    assert monitor.servicer.errors == []
    children = children_of(monitor, response.urn)
    claim = next(r for r in children if r["type"] == "kubernetes:core/v1:PersistentVolumeClaim")
    assert plain(claim["inputs"])["spec"]["storageClassName"] == "standard"
    job = next(r for r in children if r["type"] == "kubernetes:batch/v1:Job")
    assert plain(job["inputs"])["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "confidential"}


@pytest.mark.parametrize("whole_secret", [False, True])
def test_a_store_password_stays_secret_through_construct(
    host: PluginHost, monitor: MonitorServer, whole_secret: bool
) -> None:
    """The store's password, secret by itself or inside a secret object (as a program passes
    ``store: database.store``), reaches the CAS's Secret marked, never in plaintext."""
    store: Any = {"url": "postgresql://cas@db.example.com:5432/cas", "password": secret("PASSWORD-SECRET-x")}
    if whole_secret:
        store = secret({**store, "password": "PASSWORD-SECRET-x"})
    kubernetes = monitor.provider("kubernetes", "cluster")
    response = host.construct(
        monitor.address, "CasDeployment", "cas",
        {"image": "registry.example/cas:1", "externalHost": "cas.example.com", "store": store},
        parent=monitor.root_urn, providers={"kubernetes": kubernetes},
    )  # fmt: skip
    assert monitor.servicer.errors == []
    children = children_of(monitor, response.urn)
    for registration in children:
        assert plaintext_secrets(registration["inputs"]) == [], registration["name"]
    keys = next(r for r in children if r["name"] == "cas-secret")
    assert plain(keys["inputs"])["stringData"]["store-password"] == "PASSWORD-SECRET-x"
    statefulset = next(r for r in children if r["type"] == "kubernetes:apps/v1:StatefulSet")
    assert plain(statefulset["inputs"])["spec"]["replicas"] == 2
