"""One failing example per validation rule: each must be refused with an error naming the field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from pulumi_sconify.engine.policy import PolicyError, parse_session, platforms_from_data, session_from_data

Mutation = Callable[[dict[str, Any]], None]

SECRET_MARKER = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def base() -> dict[str, Any]:
    """A valid policy with every section, as plain data."""
    return {
        "name": "ns-1/app",
        "version": "0.3",
        "access_policy": {"read": ["CREATOR"], "update": ["CREATOR"]},
        "services": [
            {
                "name": "app",
                "image_name": "app_image",
                "mrenclaves": ["a" * 64],
                "command": "python3 /code/app.py -v /V1/num",
                "environment": {"PASSWORD": "$$SCONE::db_password$$", "LANG": "C.UTF-8"},
                "pwd": "/",
                "fspf_path": "/fspf/fs.fspf",
                "fspf_key": "b" * 64,
                "fspf_tag": "c" * 32,
            }
        ],
        "volumes": [{"name": "V1"}],
        "images": [{"name": "app_image", "volumes": [{"name": "V1", "path": "/V1"}]}],
        "secrets": [
            {"name": "db_password", "kind": "ascii", "size": 16},
            {"name": "ca", "kind": "x509-ca", "export_public": True},
            {"name": "tls_key", "kind": "private-key"},
            {"name": "tls", "kind": "x509", "private_key": "tls_key", "issuer": "ca", "dns": ["app"]},
        ],
        "security": {
            "attestation": {
                "mode": "hardware",
                "tolerate": ["debug-mode"],
                "ignore_advisories": "*",
                "platforms": {"sev-snp": {"measurements": ["ab" * 48]}},
            }
        },
    }


def test_base_is_valid() -> None:
    session = session_from_data(base())
    assert session.service("app").environment["PASSWORD"] == "$$SCONE::db_password$$"


def setter(path: list[str | int], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def deleter(path: list[str | int]) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def appender(path: list[str | int], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path:
            target = target[key]
        target.append(copy.deepcopy(value))

    return mutate


CASES: list[tuple[str, Mutation, str, str]] = [
    # (rule, mutation, field path expected, message fragment)
    ("name required", deleter(["name"]), "name", "required"),
    ("name syntax", setter(["name"], "ns-1/bad name"), "name", "letters, digits"),
    ("name part length", setter(["name"], "ns/" + "n" * 129), "name", "1 to 128"),
    ("name empty part", setter(["name"], "ns//app"), "name", "namespace/name"),
    ("name dot-dot", setter(["name"], "ns/.."), "name", "not . or .."),
    ("version required", deleter(["version"]), "version", "required"),
    ("version quoted", setter(["version"], 0.3), "version", "quoted string"),
    ("version supported", setter(["version"], "0.2"), "version", "unsupported"),
    ("predecessor hex", setter(["predecessor"], "abc"), "predecessor", "64 hex"),
    ("unknown top-level key", setter(["servics"], []), "servics", "unknown key"),
    (
        "unknown nested key",
        setter(["services", 0, "enviroment"], {}),
        "services[0].enviroment",
        "unknown key",
    ),
    (
        "access entry",
        setter(["access_policy", "read"], ["EVERYONE"]),
        "access_policy.read[0]",
        "CREATOR, ANY",
    ),
    (
        "access PEM",
        setter(["access_policy", "update"], ["-----BEGIN CERTIFICATE-----\nAAAA\n"]),
        "access_policy.update[0]",
        "PEM certificate",
    ),
    (
        "access NONE alone",
        setter(["access_policy", "read"], ["NONE", "CREATOR"]),
        "access_policy.read",
        "only entry",
    ),
    (
        "access duplicate",
        setter(["access_policy", "update"], ["CREATOR", "CREATOR"]),
        "access_policy.update",
        "twice",
    ),
    ("access list", setter(["access_policy", "read"], "CREATOR"), "access_policy.read", "expected a list"),
    ("service name required", deleter(["services", 0, "name"]), "services[0].name", "required"),
    ("service name syntax", setter(["services", 0, "name"], "a/b"), "services[0].name", "letters"),
    ("service names unique", appender(["services"], base()["services"][0]), "services", "twice"),
    (
        "service image declared",
        setter(["services", 0, "image_name"], "other"),
        "services[0].image_name",
        "does not declare",
    ),
    (
        "measurement hex",
        setter(["services", 0, "mrenclaves"], ["z" * 64]),
        "services[0].mrenclaves[0]",
        "64 hex",
    ),
    (
        "measurement length",
        setter(["services", 0, "mrenclaves"], ["a" * 63]),
        "services[0].mrenclaves[0]",
        "64 hex",
    ),
    (
        "measurement unique",
        setter(["services", 0, "mrenclaves"], ["a" * 64, "A" * 64]),
        "services[0].mrenclaves",
        "twice",
    ),
    (
        "attestation entry",
        setter(["services", 0, "attestation"], [{"mrenclave": ["1" * 10]}]),
        "services[0].attestation[0].mrenclave[0]",
        "64 hex",
    ),
    ("command empty", setter(["services", 0, "command"], "  "), "services[0].command", "empty"),
    (
        "command quotes",
        setter(["services", 0, "command"], "python3 'unbalanced"),
        "services[0].command",
        "split like a shell",
    ),
    (
        "command list items",
        setter(["services", 0, "command"], ["python3", 3]),
        "services[0].command[1]",
        "string",
    ),
    (
        "environment value string",
        setter(["services", 0, "environment", "LANG"], 7),
        "services[0].environment.LANG",
        "quote",
    ),
    (
        "environment name",
        setter(["services", 0, "environment"], {"1BAD": "x"}),
        "services[0].environment",
        "variable names",
    ),
    ("pwd absolute", setter(["services", 0, "pwd"], "code"), "services[0].pwd", "absolute path"),
    (
        "fspf_path normalised",
        setter(["services", 0, "fspf_path"], "/fspf/../fs.fspf"),
        "services[0].fspf_path",
        "absolute path",
    ),
    (
        "fspf_key hex",
        setter(["services", 0, "fspf_key"], "b" * 62),
        "services[0].fspf_key",
        "expected 64 hex characters",
    ),
    (
        "fspf_tag hex",
        setter(["services", 0, "fspf_tag"], "c" * 64),
        "services[0].fspf_tag",
        "expected 32 hex characters",
    ),
    ("fspf fields together", deleter(["services", 0, "fspf_tag"]), "services[0].fspf_tag", "together"),
    (
        "placeholder declared",
        setter(["services", 0, "environment", "X"], "$$SCONE::nope$$"),
        "services[0]",
        "placeholder",
    ),
    ("volume name", setter(["volumes", 0, "name"], "V 1"), "volumes[0].name", "letters"),
    ("volume names unique", appender(["volumes"], {"name": "V1"}), "volumes", "twice"),
    (
        "volume key hex",
        setter(["volumes", 0], {"name": "V1", "fspf_key": "x" * 64, "fspf_tag": "c" * 32}),
        "volumes[0].fspf_key",
        "64 hex",
    ),
    (
        "volume key and tag together",
        setter(["volumes", 0], {"name": "V1", "fspf_key": "d" * 64}),
        "volumes[0]",
        "both or neither",
    ),
    (
        "volume update policy",
        setter(["volumes", 0, "update_policy"], "sometimes"),
        "volumes[0].update_policy",
        "rollback_protected",
    ),
    ("image names unique", appender(["images"], {"name": "app_image"}), "images", "twice"),
    (
        "image volume declared",
        setter(["images", 0, "volumes", 0, "name"], "V2"),
        "images[0].volumes[0].name",
        "does not declare",
    ),
    (
        "image volume path",
        setter(["images", 0, "volumes", 0, "path"], "V1"),
        "images[0].volumes[0].path",
        "absolute path",
    ),
    (
        "image volume path required",
        deleter(["images", 0, "volumes", 0, "path"]),
        "images[0].volumes[0].path",
        "required",
    ),
    (
        "image mount paths unique",
        setter(["images", 0, "volumes"], [{"name": "V1", "path": "/V"}, {"name": "V1", "path": "/V"}]),
        "images[0].volumes",
        "twice",
    ),
    (
        "injection file path",
        setter(["images", 0, "injection_files"], [{"path": "etc/x", "content": "y"}]),
        "images[0].injection_files[0].path",
        "absolute path",
    ),
    ("secret kind", setter(["secrets", 0, "kind"], "password"), "secrets[0].kind", "ascii, binary"),
    ("secret names unique", appender(["secrets"], {"name": "ca", "kind": "x509-ca"}), "secrets", "twice"),
    ("secret size range", setter(["secrets", 0, "size"], 0), "secrets[0].size", "whole number"),
    ("secret value xor size", setter(["secrets", 0, "value"], SECRET_MARKER), "secrets[0]", "not both"),
    (
        "secret binary hex",
        setter(["secrets", 0], {"name": "db_password", "kind": "binary", "value": "zz"}),
        "secrets[0].value",
        "hex",
    ),
    ("secret x509 fields", setter(["secrets", 0, "issuer"], "ca"), "secrets[0].issuer", "only for x509"),
    ("secret issuer kind", setter(["secrets", 3, "issuer"], "tls_key"), "secrets[3].issuer", "x509-ca"),
    (
        "secret private key kind",
        setter(["secrets", 3, "private_key"], "ca"),
        "secrets[3].private_key",
        "private-key",
    ),
    (
        "export_public bool",
        setter(["secrets", 1, "export_public"], "yes"),
        "secrets[1].export_public",
        "true or false",
    ),
    (
        "attestation mode",
        setter(["security", "attestation", "mode"], "trust-me"),
        "security.attestation.mode",
        "hardware, maa, none",
    ),
    (
        "toleration unknown",
        setter(["security", "attestation", "tolerate"], ["Debug Mode"]),
        "security.attestation.tolerate[0]",
        "unknown toleration",
    ),
    (
        "advisories",
        setter(["security", "attestation", "ignore_advisories"], "all"),
        "security.attestation.ignore_advisories",
        '"*"',
    ),
    (
        "toleration misspelt",
        setter(["security", "attestation", "tolerate"], ["debug-mod"]),
        "security.attestation.tolerate[0]",
        "known: insecure-software-evidence, debug-mode",
    ),
    (
        "kubernetes identity incomplete",
        setter(["services", 0, "kubernetes"], {"issuer": "https://issuer.example"}),
        "services[0].kubernetes.namespace",
        "required",
    ),
    (
        "kubernetes issuer",
        setter(
            ["services", 0, "kubernetes"],
            {"issuer": "http://issuer.example", "namespace": "default", "service_account": "app"},
        ),
        "services[0].kubernetes.issuer",
        "https://",
    ),
    (
        "kubernetes namespace",
        setter(
            ["services", 0, "kubernetes"],
            {"issuer": "https://issuer.example", "namespace": "Not_A_Label", "service_account": "app"},
        ),
        "services[0].kubernetes.namespace",
        "DNS label",
    ),
    ("services list", setter(["services"], {"name": "app"}), "services", "expected a list"),
    ("service mapping", setter(["services", 0], "app"), "services[0]", "expected a mapping"),
    (
        "mode hardware without a platform",
        deleter(["security", "attestation", "platforms"]),
        "security.attestation.platforms",
        "mode hardware needs",
    ),
    (
        "platform unknown",
        setter(["security", "attestation", "platforms", "nitro"], {}),
        "security.attestation.platforms.nitro",
        "unknown key",
    ),
    (
        "snp measurements required",
        setter(["security", "attestation", "platforms", "sev-snp"], {"minimum_tcb": {"snp": 8}}),
        "security.attestation.platforms.sev-snp.measurements",
        "required",
    ),
    (
        "snp measurement length",
        setter(["security", "attestation", "platforms", "sev-snp", "measurements"], ["ab" * 32]),
        "security.attestation.platforms.sev-snp.measurements[0]",
        "96 hex",
    ),
    (
        "snp tcb level",
        setter(["security", "attestation", "platforms", "sev-snp", "minimum_tcb"], {"microcode": 256}),
        "security.attestation.platforms.sev-snp.minimum_tcb.microcode",
        "0 to 255",
    ),
    (
        "snp vmpl",
        setter(["security", "attestation", "platforms", "sev-snp", "maximum_vmpl"], 4),
        "security.attestation.platforms.sev-snp.maximum_vmpl",
        "0 to 3",
    ),
    (
        "tdx rtmr index",
        setter(
            ["security", "attestation", "platforms", "tdx"], {"mrtd": ["ab" * 48], "rtmrs": {4: "ab" * 48}}
        ),
        "security.attestation.platforms.tdx.rtmrs",
        "0 to 3",
    ),
    (
        "azure pcrs required",
        setter(["security", "attestation", "platforms", "azure-cvm"], {"measurements": []}),
        "security.attestation.platforms.azure-cvm.pcrs",
        "required",
    ),
    (
        "azure pcr value",
        setter(["security", "attestation", "platforms", "azure-cvm"], {"pcrs": {"7": "xyz"}}),
        "security.attestation.platforms.azure-cvm.pcrs.7",
        "64 hex",
    ),
]


@pytest.mark.parametrize(("rule", "mutate", "path", "fragment"), CASES, ids=[case[0] for case in CASES])
def test_rule_is_enforced(rule: str, mutate: Mutation, path: str, fragment: str) -> None:
    data = base()
    mutate(data)
    with pytest.raises(PolicyError) as caught:
        session_from_data(data)
    problems = {(p.path, p.message) for p in caught.value.problems}
    assert any(p == path and fragment in m for p, m in problems), f"{rule}: got {problems}"
    # The same rule applies to text: what YAML produces goes through the same checks.
    with pytest.raises(PolicyError):
        parse_session(yaml.safe_dump(data))


def test_all_problems_are_reported_not_just_the_first() -> None:
    data = base()
    data["services"][0]["fspf_key"] = "short"
    data["volumes"][0]["name"] = "bad name"
    with pytest.raises(PolicyError) as caught:
        session_from_data(data)
    paths = [p.path for p in caught.value.problems]
    assert "services[0].fspf_key" in paths
    assert "volumes[0].name" in paths
    assert str(caught.value).splitlines()[0] == "services[0].fspf_key: expected 64 hex characters"


SECRET_BEARING_FIELDS: list[Mutation] = [
    setter(["services", 0, "fspf_key"], SECRET_MARKER + "Z"),
    setter(["volumes", 0], {"name": "V1", "fspf_key": SECRET_MARKER, "fspf_tag": "c" * 32}),
    setter(["secrets", 0], {"name": "db_password", "kind": "binary", "value": "not-hex-" + SECRET_MARKER}),
    setter(["secrets", 0], {"name": "db_password", "kind": "ascii", "value": SECRET_MARKER, "size": 3}),
    setter(["services", 0, "environment", "PASSWORD"], int(SECRET_MARKER[:12], 16)),
    setter(["access_policy", "read"], [SECRET_MARKER]),
]


@pytest.mark.parametrize("mutate", SECRET_BEARING_FIELDS)
def test_errors_never_echo_the_value(mutate: Mutation) -> None:
    data = base()
    mutate(data)
    with pytest.raises(PolicyError) as caught:
        parse_session(yaml.safe_dump(data))
    text = str(caught.value) + repr(caught.value.problems)
    assert SECRET_MARKER not in text
    assert SECRET_MARKER[:12] not in text
    assert str(int(SECRET_MARKER[:12], 16)) not in text


def test_model_repr_hides_keys_and_secret_values() -> None:
    data = base()
    data["secrets"][0] = {"name": "db_password", "kind": "ascii", "value": SECRET_MARKER}
    data["services"][0]["environment"]["PASSWORD"] = SECRET_MARKER
    data["volumes"][0] = {"name": "V1", "fspf_key": "e" * 64, "fspf_tag": "c" * 32}
    session = session_from_data(data)
    shown = repr(session)
    assert SECRET_MARKER not in shown
    assert "b" * 64 not in shown
    assert "e" * 64 not in shown


def test_hex_values_that_yaml_reads_as_numbers_keep_their_digits() -> None:
    digits = "0" + "1" * 63  # all decimal digits, with a leading zero YAML would drop
    text = yaml.safe_dump(base()).replace("a" * 64, digits)
    assert parse_session(text).service("app").mrenclaves == (digits,)


def test_hex_is_normalised_to_lower_case() -> None:
    data = base()
    data["services"][0]["fspf_key"] = "B" * 64
    assert session_from_data(data).service("app").fspf_key == "b" * 64


def test_pem_certificate_is_an_access_entry() -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    data = base()
    data["access_policy"]["update"] = ["CREATOR", pem]
    session = session_from_data(data)
    assert session.access_policy.update[1] == pem


ZERO = "0" * 64


@pytest.mark.parametrize(
    ("pcrs", "refused"),
    [
        ({"0": ZERO, "7": "ab" * 32}, ["pcrs.0"]),
        (
            {"0": "ab" * 32, "7": ZERO, "11": ZERO},
            ["pcrs.7"],
        ),  # PCR 11 is not always extended: zero may be real
        ({"0": "ab" * 32, "11": ZERO}, []),
    ],
)
def test_placeholder_pcrs_are_refused_where_the_firmware_always_measures(
    pcrs: dict[str, str], refused: list[str]
) -> None:
    path = "hardware_attestation"
    if not refused:
        platforms_from_data({"azure-cvm": {"pcrs": pcrs}}, path)
        return
    with pytest.raises(PolicyError) as error:
        platforms_from_data({"azure-cvm": {"pcrs": pcrs}}, path)
    assert [p.path for p in error.value.problems] == [f"{path}.azure-cvm.{name}" for name in refused]
    assert "placeholder" in error.value.problems[0].message
    assert "sconify evidence collect azure-cvm" in error.value.problems[0].message
