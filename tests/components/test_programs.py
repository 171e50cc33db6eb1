"""The root program (dev and aks stacks) and both examples, run under Pulumi's mocks: the resource graph,
secrets, Kubernetes objects against Kubernetes' schemas, preview with unknowns, and what one changed
input changes."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pulumi_sconify.components.aks import PCRS_NEEDED
from pulumi_sconify.engine.cas.clients.identity import cas_audience
from pulumi_sconify.engine.cas.intake.evidence import (
    EvidencePolicy,
    InsecureSoftwareEvidence,
    KubernetesEvidence,
)
from pulumi_sconify.engine.cas.intake.hardware import HardwareTrust, hardware_verifiers
from pulumi_sconify.engine.cas.state.recovery import create_recovery_key
from pulumi_sconify.engine.errors import EvidenceRefusedError
from pulumi_sconify.engine.policy import (
    AttestationMode,
    KubernetesIdentity,
    platforms_from_data,
    sconified_session,
)
from tests.support.pulumi.program_runner import MOCK_CA_CERTIFICATE, plain
from tests.support.pulumi.programs import (
    PROGRAMS,
    STACKS,
    Run,
    has_unknown,
    plaintext_secrets,
    program_run,
    python_inputs,
    root_program_copy,
    run_program,
)

KUBERNETES_VERSION = "1.33"
pytestmark = pytest.mark.slow


def parent_name(registration: dict[str, object]) -> str:
    return str(registration["parent"]).rsplit("::", 1)[-1]


def graph(run: Run) -> set[tuple[str, str, str]]:
    return {(r["type"].rsplit(":", 1)[-1], r["name"], parent_name(r)) for r in run.registrations}


SERVICE_GRAPH = {
    ("ConfidentialStatefulService", "counter", "{stack}"),
    ("CreatorIdentity", "counter-identity", "counter"),
    ("CasSession", "counter-cas-namespace", "counter"),
    ("SconifiedImage", "counter-image", "counter"),
    ("CasSession", "counter-session", "counter"),
    ("EncryptedVolume", "counter-volume-v1", "counter"),
    ("PersistentVolumeClaim", "counter-volume-v1-claim", "counter-volume-v1"),
    ("ServiceAccount", "counter-serviceaccount", "counter"),
    ("CasDeployment", "cas", "{stack}"),
    ("ServiceAccount", "cas-service-account", "cas"),
    ("ClusterRoleBinding", "cas-issuer-discovery", "cas"),
    ("NetworkPolicy", "cas-network-policy", "cas"),
    ("CasKeys", "cas-keys", "cas"),
    ("CasRecoveryKey", "cas-recovery", "cas"),
    ("ConfigMap", "cas-recovery-key", "cas"),
    ("Namespace", "cas-namespace", "cas"),
    ("Secret", "cas-secret", "cas"),
    ("Service", "cas-service", "cas"),
    ("Service", "cas-client-service", "cas"),
    ("StatefulSet", "cas-statefulset", "cas"),
    ("CasImage", "cas-image", "{stack}"),
    ("DockerfileImage", "counter", "{stack}"),
    ("Command", "counter-build", "counter"),
}
JOBS = {("Job", f"counter-job-run-{n}", "counter") for n in (1, 2, 3)}
MINIKUBE = {
    ("MinikubeCluster", "cluster", "{stack}"),
    ("Command", "cluster-start", "cluster"),
    ("Command", "cluster-kubeconfig", "cluster"),
    ("Command", "cluster-ip", "cluster"),
    ("kubernetes", "cluster-kubernetes", "cluster"),
}
AKS = {
    ("AksCluster", "cluster", "{stack}"),
    ("ResourceGroup", "cluster-group", "cluster"),
    ("VirtualNetwork", "cluster-network", "cluster"),
    ("Subnet", "cluster-nodes", "cluster"),
    ("Subnet", "cluster-databases", "cluster"),
    ("PrivateZone", "cluster-database-dns", "cluster"),
    ("VirtualNetworkLink", "cluster-database-dns-link", "cluster"),
    ("ManagedCluster", "cluster-cluster", "cluster"),
    ("RoleAssignment", "cluster-cluster-network-contributor", "cluster"),
    # The CAS on Azure's zone-redundant PostgreSQL, as two replicas that keep one up through drains.
    ("AzurePostgres", "cas-store", "{stack}"),
    ("RandomPassword", "cas-store-password", "cas-store"),
    ("Server", "cas-store-server", "cas-store"),
    ("Database", "cas-store-database", "cas-store"),
    ("ConfigMap", "cas-store-ca", "cas"),
    ("PodDisruptionBudget", "cas-disruption-budget", "cas"),
    ("Registry", "cluster-registry", "cluster"),
    ("RoleAssignment", "cluster-kubelet-acr-pull", "cluster"),
    ("kubernetes", "cluster-kubernetes", "cluster"),
    ("DaemonSet", "cluster-vtpm-device-plugin", "cluster"),
}


def expected(parts: set[tuple[str, str, str]], stack: str) -> set[tuple[str, str, str]]:
    return {(kind, name, parent.format(stack=stack)) for kind, name, parent in parts}


@pytest.mark.parametrize(("stack", "platform"), [("dev", MINIKUBE), ("aks", AKS)])
def test_root_program_graph(stack: str, platform: set[tuple[str, str, str]]) -> None:
    run = program_run("root", stack)
    assert graph(run) == expected(SERVICE_GRAPH | JOBS | platform, f"sconify-counter-{stack}")


@pytest.mark.parametrize(("program", "stack"), STACKS)
def test_kubernetes_resources_use_the_clusters_provider(program: str, stack: str) -> None:
    run = program_run(program, stack)
    provider = next(r for r in run.registrations if r["type"] == "pulumi:providers:kubernetes")
    kubernetes = [r for r in run.registrations if r["type"].startswith("kubernetes:")]
    assert len(kubernetes) >= 7
    for registration in kubernetes:
        assert registration["provider"].startswith(provider["urn"] + "::"), registration["name"]


def test_dependencies_order_the_deployment() -> None:
    run = program_run("root", "dev")
    depends = {
        r["name"] + ":" + r["type"].rsplit(":", 1)[-1]: set(r["dependencies"]) for r in run.registrations
    }
    session, namespace = (
        run.urn_of("counter-session", "CasSession"),
        run.urn_of("counter-cas-namespace", "CasSession"),
    )
    # Depending on a component means depending on its children: the volume's claim.
    volume, statefulset = run.urn_of("counter-volume-v1-claim"), run.urn_of("cas-statefulset")
    assert namespace in depends["counter-session:CasSession"]
    assert {session, volume} <= depends["counter-job-run-1:Job"]
    assert run.urn_of("counter-job-run-1") in depends["counter-job-run-2:Job"]  # one run after the other
    assert run.urn_of("counter-job-run-2") in depends["counter-job-run-3:Job"]
    assert run.urn_of("cas-secret") in depends["cas-statefulset:StatefulSet"]
    # Sessions are uploaded once the CAS is ready: the address they use waits for the StatefulSet.
    assert statefulset in depends["counter-cas-namespace:CasSession"]
    # The image pins the CAS it will attest to (its CA comes from the CAS's keys).
    assert run.urn_of("cas-keys") in depends["counter-image:SconifiedImage"]


@pytest.mark.parametrize(("program", "stack"), STACKS)
def test_kubernetes_objects_validate_against_kubernetes_schemas(program: str, stack: str) -> None:
    run = program_run(program, stack)
    kubernetes = [r for r in run.registrations if r["type"].startswith("kubernetes:")]
    for registration in kubernetes:
        kubernetes_validate.validate(plain(registration["inputs"]), KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("program", "stack"), STACKS)
def test_no_secret_reaches_the_engine_in_plaintext(program: str, stack: str) -> None:
    run = program_run(program, stack)
    for registration in run.registrations:
        assert plaintext_secrets(registration["inputs"]) == [], registration["name"]
    assert run.exports["kubeconfig"]["secret"] is True
    for name, export in run.exports.items():
        assert export["secret"] or "SECRET" not in str(export["value"]), name


def test_secret_outputs_are_declared() -> None:
    run = program_run("root", "dev")
    assert set(run.by_name("cas-keys")["additional_secret_outputs"]) >= {"caKeyPem", "masterKey"}
    assert "stdout" in run.by_name("cluster-kubeconfig")["additional_secret_outputs"]
    assert "fspfKey" in run.by_name("counter-image", "SconifiedImage")["additional_secret_outputs"]
    assert "privateKeyPem" in run.by_name("counter-identity")["additional_secret_outputs"]


def test_aks_cluster_has_a_confidential_pool_and_pull_rights() -> None:
    run = program_run("root", "aks")
    cluster = plain(run.by_name("cluster-cluster", "ManagedCluster")["inputs"])
    pools = {pool["name"]: pool for pool in cluster["agentPoolProfiles"]}
    assert pools["system"]["mode"] == "System"
    assert pools["confidential"]["vmSize"] == "Standard_DC4as_v5"  # AMD SEV-SNP confidential VMs
    assert pools["confidential"]["nodeTaints"] == ["sconify.io/confidential=true:NoSchedule"]
    assert "ACCSGXDevicePlugin" not in (cluster.get("addonProfiles") or {})
    role = plain(run.by_name("cluster-kubelet-acr-pull")["inputs"])
    assert role["roleDefinitionId"].endswith("/7f951dda-4ed3-4680-a7ca-43fe172d538d")
    claim = plain(run.by_name("counter-volume-v1-claim")["inputs"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "azurefile-csi"
    job = plain(run.by_name("counter-job-run-1")["inputs"])["spec"]["template"]["spec"]
    assert job["nodeSelector"] == {"sconify.io/confidential": "true"}
    # The pod gets the VM's vTPM through the device plugin, not by running privileged.
    assert job["containers"][0]["resources"]["limits"] == {"sconify.io/tpmrm0": "1"}
    assert "securityContext" not in job["containers"][0] or not job["containers"][0]["securityContext"].get(
        "privileged"
    )
    plugin = plain(run.by_name("cluster-vtpm-device-plugin", "DaemonSet")["inputs"])
    assert plugin["spec"]["template"]["spec"]["nodeSelector"] == {"sconify.io/confidential": "true"}
    assert "sconify.io" in plugin["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize(("program", "stack"), [("root", "aks"), ("aks", "prod")])
def test_the_aks_stacks_accept_only_hardware_evidence(program: str, stack: str) -> None:
    run = program_run(program, stack)
    image = python_inputs(run.by_name("counter-image", "SconifiedImage"))
    assert image["insecure_software_evidence"] is False
    pcrs = image["hardware_attestation"]["azure-cvm"]["pcrs"]
    assert set(pcrs) == {"0", "7", "11"}
    # The policy the provider writes from these inputs (the same function), as the CAS applies it.
    session = sconified_session(
        namespace="ns",
        session="counter-session",
        service="counter",
        mrenclave="ab" * 32,
        command="python3 /code/app.py",
        fspf_key="cd" * 32,
        fspf_tag="ef" * 16,
        volumes=image["volumes"],
        tolerate=image["tolerate"],
        kubernetes=KubernetesIdentity(**image["kubernetes"]),
        platforms=platforms_from_data(image["hardware_attestation"]),
    )
    assert session.security is not None and session.security.attestation.mode is AttestationMode.HARDWARE
    cas = EvidencePolicy(
        [*hardware_verifiers(HardwareTrust()), KubernetesEvidence(None), InsecureSoftwareEvidence()]
    )
    assert cas.accepted_kinds(session, session.services[0]) == ["azure-cvm"]
    with pytest.raises(EvidenceRefusedError, match="does not accept insecure-software-evidence"):
        cas.evaluate("insecure-software-evidence", {}, session, session.services[0], b"")
    with pytest.raises(EvidenceRefusedError, match="does not accept kubernetes"):
        cas.evaluate("kubernetes", {"token": "x"}, session, session.services[0], b"")


@pytest.mark.parametrize(("program", "stack"), [("root", "aks"), ("aks", "prod")])
def test_an_aks_stack_as_shipped_brings_up_the_cluster_and_cas_and_waits_for_the_pcrs(
    program: str, stack: str
) -> None:
    """The first `up` of an AKS stack: the confidential nodes' PCRs cannot be read before the nodes run, so
    the service is not declared (no policy with placeholders that no node matches), and the program says
    what to do next."""
    run = run_program(PROGRAMS[program], stack, as_shipped=True)
    assert run.of_type("AksCluster") and run.of_type("CasDeployment")
    assert not run.of_type("ConfidentialStatefulService") and not run.of_type("SconifiedImage")
    assert PCRS_NEEDED in run.warnings
    assert "image" not in run.exports and "casAddress" in run.exports


def test_minikube_claim_and_registry() -> None:
    run = program_run("root", "dev")
    claim = plain(run.by_name("counter-volume-v1-claim")["inputs"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["metadata"]["annotations"] == {
        "sconify.io/volume": "V1",
        "sconify.io/session": "counter-dev/counter-session",
    }
    image = python_inputs(run.by_name("counter-image", "SconifiedImage"))
    assert image["insecure_registries"] == ["192.168.49.2:5000"]
    assert image["volumes"] == {"V1": "/V1"} and image["dirs"] == ["/code"]
    job = plain(run.by_name("counter-job-run-1")["inputs"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == run.exports["image"]["value"]
    assert {"name": "SCONE_CAS_ADDR", "value": "sconify-cas.sconify-cas.svc:18765"} in container["env"]


def test_examples_run_the_counter_as_described() -> None:
    minikube = program_run("minikube", "dev")
    assert len(minikube.of_type(":Job")) == 3
    aks = program_run("aks", "prod")
    assert [r["name"] for r in aks.of_type(":Deployment")] == ["counter-deployment"]
    deployment = plain(aks.by_name("counter-deployment")["inputs"])
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two writers of the volume
    assert aks.by_name("counter-volume-v1-claim")["protect"] is True


@pytest.mark.parametrize(("program", "stack"), STACKS)
def test_preview_with_unknown_values(program: str, stack: str) -> None:
    preview, up = program_run(program, stack, preview=True), program_run(program, stack)
    # Everything is declared in a preview, though the cluster, images and CAS do not exist yet.
    assert {(r["type"], r["name"]) for r in preview.registrations} == {
        (r["type"], r["name"]) for r in up.registrations
    }
    job_or_deployment = [r for r in preview.registrations if r["type"].endswith((":Job", ":Deployment"))]
    assert job_or_deployment and all(has_unknown(r["inputs"]) for r in job_or_deployment)
    assert preview.exports["kubeconfig"]["secret"] is True


def changed_resources(before: Run, after: Run) -> set[str]:
    old = {r["urn"]: plain(r["inputs"]) for r in before.registrations}
    new = {r["urn"]: plain(r["inputs"]) for r in after.registrations}
    assert old.keys() == new.keys()
    return {urn.rsplit("::", 1)[-1].removeprefix("counter-") for urn in old if old[urn] != new[urn]}


def _with_config(directory: Path, **changes: str) -> None:
    stack_file = directory / "Pulumi.dev.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"].update({f"sconify-counter:{key}": value for key, value in changes.items()})
    stack_file.write_text(yaml.safe_dump(document))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_program(root_program_copy(tmp_path_factory.mktemp("baseline")), "dev")


def test_a_volume_size_changes_only_its_claim(baseline: Run, tmp_path: Path) -> None:
    _with_config(root_program_copy(tmp_path), volumeSize="2Gi")
    assert changed_resources(baseline, run_program(tmp_path, "dev")) == {"volume-v1-claim"}


def test_the_command_changes_image_policy_and_workload(baseline: Run, tmp_path: Path) -> None:
    _with_config(root_program_copy(tmp_path), command="python3 /code/app.py -v /V1/count")
    changed = changed_resources(baseline, run_program(tmp_path, "dev"))
    assert changed == {"image", "session", "job-run-1", "job-run-2", "job-run-3"}


def test_the_app_code_rebuilds_the_native_image_and_what_follows(baseline: Run, tmp_path: Path) -> None:
    app = root_program_copy(tmp_path) / "examples" / "counter" / "app.py"
    app.write_text(app.read_text() + "\n# a change\n")
    changed = changed_resources(baseline, run_program(tmp_path, "dev"))
    assert changed == {"build", "image", "session", "job-run-1", "job-run-2", "job-run-3"}


def test_the_same_program_gives_the_same_inputs(baseline: Run, tmp_path: Path) -> None:
    root_program_copy(tmp_path)
    assert changed_resources(baseline, run_program(tmp_path, "dev")) == set()


@pytest.mark.parametrize(("program", "stack"), STACKS)
def test_pods_attest_as_their_own_service_account_and_nothing_else(program: str, stack: str) -> None:
    """The policy pins the account the pods run as, the pods carry only a token for this CAS, and no stack
    of the examples accepts the runtime's own word."""
    run = program_run(program, stack)
    image = python_inputs(run.by_name("counter-image", "SconifiedImage"))
    assert image["insecure_software_evidence"] is False
    pinned = image["kubernetes"]
    assert pinned["issuer"] == "https://kubernetes.default.svc.cluster.local"
    accounts = {plain(r["inputs"])["metadata"]["name"] for r in run.of_type(":ServiceAccount")}
    assert pinned["service_account"] in accounts
    workloads = run.of_type(":Job") + run.of_type(":Deployment")
    assert workloads
    for workload in workloads:
        template = plain(workload["inputs"])["spec"]["template"]
        pod = template["spec"]
        assert pod["serviceAccountName"] == pinned["service_account"]
        assert pod["automountServiceAccountToken"] is False
        assert template["metadata"]["labels"]["sconify.io/attests"] == "true"
        (token,) = [v for v in pod["volumes"] if v["name"] == "sconify-token"]
        source = token["projected"]["sources"][0]["serviceAccountToken"]
        if program == "root":  # its CAS's keys are mocked with a real certificate
            assert source["audience"] == cas_audience(MOCK_CA_CERTIFICATE)
        assert source["expirationSeconds"] == 3600


def test_only_attesting_pods_reach_the_attestation_port() -> None:
    run = program_run("root", "dev")
    policy = plain(run.by_name("cas-network-policy")["inputs"])
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    client, attestation = policy["spec"]["ingress"]
    assert client == {"ports": [{"port": 8081, "protocol": "TCP"}]}  # mutual TLS: open to uploads
    assert attestation["ports"] == [{"port": 18765, "protocol": "TCP"}]
    assert attestation["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"sconify.io/attests": "true"}}}
    ]
    exposed = plain(run.by_name("cas-client-service")["inputs"])
    assert [port["name"] for port in exposed["spec"]["ports"]] == ["client"]
    cas = plain(run.by_name("cas-statefulset")["inputs"])["spec"]["template"]["spec"]
    arguments = cas["containers"][0]["args"]
    assert (
        arguments[arguments.index("--kubernetes-issuer") + 1]
        == "https://kubernetes.default.svc.cluster.local"
    )
    assert cas["serviceAccountName"] == "sconify-cas"
    binding = plain(run.by_name("cas-issuer-discovery")["inputs"])
    assert binding["roleRef"]["name"] == "system:service-account-issuer-discovery"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sconify-cas", "namespace": "sconify-cas"}
    ]


def test_insecure_evidence_is_an_explicit_input(tmp_path: Path) -> None:
    _with_config(root_program_copy(tmp_path), insecureSoftwareEvidence="true")
    run = run_program(tmp_path, "dev")
    assert python_inputs(run.by_name("counter-image", "SconifiedImage"))["insecure_software_evidence"] is True


def test_a_postgresql_store_runs_replicas_with_a_disruption_budget_and_a_recovery_key(tmp_path: Path) -> None:
    """docs/cas.md#replicas from the stack's configuration: the CAS on PostgreSQL as two pods that keep one
    up through drains, the password only in the CAS's Secret, the master key sealed to the owner's key."""
    recovery = create_recovery_key(tmp_path / "owner")
    url = "postgresql://cas@db.example.com:5432/cas?sslmode=require"
    (tmp_path / "program").mkdir()
    program = root_program_copy(tmp_path / "program")
    _with_config(
        program,
        casStore=url,
        casStorePassword="SECRET-db-password",
        casRecoveryKey=recovery.public.read_text(),
    )
    run = run_program(program, "dev")
    spec = plain(run.by_name("cas-statefulset")["inputs"])["spec"]
    assert spec["replicas"] == 2
    (container,) = spec["template"]["spec"]["containers"]
    arguments = container["args"]
    assert arguments[arguments.index("--store") + 1] == url
    assert (
        arguments[arguments.index("--recovery-key") + 1] == "/etc/sconify-cas/recovery/recovery-key.pub.pem"
    )
    assert {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "sconify-cas-keys", "key": "store-password"}},
    } in container["env"]
    budget = plain(run.by_name("cas-disruption-budget")["inputs"])["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    key_map = plain(run.by_name("cas-recovery-key")["inputs"])
    assert key_map["data"]["recovery-key.pub.pem"] == recovery.public.read_text()
    for registration in run.registrations:
        assert plaintext_secrets(registration["inputs"]) == [], registration["name"]
        if registration["type"].startswith("kubernetes:"):
            kubernetes_validate.validate(plain(registration["inputs"]), KUBERNETES_VERSION, strict=True)


def test_sqlite_keeps_one_cas_pod_and_no_budget(baseline: Run) -> None:
    spec = plain(baseline.by_name("cas-statefulset")["inputs"])["spec"]
    assert spec["replicas"] == 1 and "--store" not in spec["template"]["spec"]["containers"][0]["args"]
    assert not baseline.of_type(":PodDisruptionBudget")
