"""Render a session deterministically, and compute its hash.

Rendering is a pure function of the model: the same model always gives the same bytes, and
``parse_session(render_session(s)) == s``. Keys come in a fixed order (the order of
``docs/policy.md``), defaults are left out where SCONE leaves them out (a volume's
``rollback_protected``, a secret's ``export_public: false``), the access policy is always written
out (a reader should never have to know a default to see who may change a policy), and multi-line
strings (PEM certificates, injected files) use YAML's literal block style.

The session hash
----------------
``session_hash(s)`` is the lower-case hex SHA-256 of::

    b"sconify-session-v1\\n" + canonical_json(session_to_data(s))

where ``canonical_json`` is JSON with keys sorted, no insignificant white space, UTF-8, and no
escaping of non-ASCII characters. The hash is therefore independent of YAML formatting, comments,
key order and defaults written out or left out, and changes with every change of meaning —
including ``predecessor``, which chains a session's versions into a history.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from ..vocabulary import AZURE_CVM, SEV_SNP, TDX
from .model import (
    SNP_TCB_COMPONENTS,
    AccessPolicy,
    Image,
    Platforms,
    Secret,
    Security,
    Service,
    Session,
    SnpTcb,
    UpdatePolicy,
    Volume,
)

HASH_DOMAIN = b"sconify-session-v1\n"


def _drop_empty(mapping: dict[str, Any]) -> dict[str, Any]:
    """Leave out fields that carry nothing (``None`` or an empty list or mapping)."""
    return {key: value for key, value in mapping.items() if value not in (None, [], {})}


def _access_policy(policy: AccessPolicy) -> dict[str, Any]:
    data: dict[str, Any] = {"read": list(policy.read), "update": list(policy.update)}
    if policy.create_sessions is not None:
        data["create_sessions"] = list(policy.create_sessions)
    return data


def _service(service: Service) -> dict[str, Any]:
    command = list(service.command) if isinstance(service.command, tuple) else service.command
    return _drop_empty(
        {
            "name": service.name,
            "image_name": service.image_name,
            "mrenclaves": list(service.mrenclaves),
            "attestation": [{"mrenclave": list(rule.mrenclaves)} for rule in service.attestation],
            "command": command,
            "environment": dict(service.environment),
            "pwd": service.pwd,
            "fspf_path": service.fspf_path,
            "fspf_key": service.fspf_key,
            "fspf_tag": service.fspf_tag,
            "kubernetes": (
                {
                    "issuer": service.kubernetes.issuer,
                    "namespace": service.kubernetes.namespace,
                    "service_account": service.kubernetes.service_account,
                }
                if service.kubernetes is not None
                else None
            ),
        }
    )


def _volume(volume: Volume) -> dict[str, Any]:
    policy = None if volume.update_policy is UpdatePolicy.ROLLBACK_PROTECTED else volume.update_policy.value
    return _drop_empty(
        {
            "name": volume.name,
            "fspf_key": volume.fspf_key,
            "fspf_tag": volume.fspf_tag,
            "update_policy": policy,
        }
    )


def _image(image: Image) -> dict[str, Any]:
    return _drop_empty(
        {
            "name": image.name,
            "volumes": [{"name": v.name, "path": v.path} for v in image.volumes],
            "injection_files": [{"path": f.path, "content": f.content} for f in image.injection_files],
        }
    )


def _secret(secret: Secret) -> dict[str, Any]:
    return _drop_empty(
        {
            "name": secret.name,
            "kind": secret.kind.value,
            "value": secret.value,
            "size": secret.size,
            "export_public": True if secret.export_public else None,
            "private_key": secret.private_key,
            "issuer": secret.issuer,
            "common_name": secret.common_name,
            "dns": list(secret.dns),
        }
    )


def _security(security: Security) -> dict[str, Any]:
    attestation = security.attestation
    advisories = attestation.ignore_advisories
    return {
        "attestation": _drop_empty(
            {
                "mode": attestation.mode.value if attestation.mode is not None else None,
                "tolerate": list(attestation.tolerate),
                "ignore_advisories": list(advisories) if isinstance(advisories, tuple) else advisories,
                "platforms": _platforms(attestation.platforms),
            }
        )
    }


def _tcb(tcb: SnpTcb) -> dict[str, int]:
    return {name: getattr(tcb, name) for name in SNP_TCB_COMPONENTS if getattr(tcb, name)}


def _registers(registers: tuple[tuple[int, str], ...]) -> dict[str, str]:
    # String keys: the same data must serialise to JSON (the session hash) and YAML alike.
    return {str(index): value for index, value in registers}


def _platforms(platforms: Platforms) -> dict[str, Any]:
    snp, tdx, azure = platforms.sev_snp, platforms.tdx, platforms.azure_cvm
    return _drop_empty(
        {
            SEV_SNP: None
            if snp is None
            else _drop_empty(
                {
                    "measurements": list(snp.measurements),
                    "minimum_tcb": _tcb(snp.minimum_tcb),
                    "maximum_vmpl": snp.maximum_vmpl or None,
                }
            ),
            TDX: None
            if tdx is None
            else _drop_empty({"mrtd": list(tdx.mrtd), "rtmrs": _registers(tdx.rtmrs)}),
            AZURE_CVM: None
            if azure is None
            else _drop_empty(
                {
                    "pcrs": _registers(azure.pcrs),
                    "measurements": list(azure.measurements),
                    "minimum_tcb": _tcb(azure.minimum_tcb),
                }
            ),
        }
    )


def session_to_data(session: Session) -> dict[str, Any]:
    """The session as plain data (dicts, lists, strings, ints, bools) in rendering order."""
    return _drop_empty(
        {
            "name": session.name,
            "version": session.version,
            "predecessor": session.predecessor,
            "access_policy": _access_policy(session.access_policy),
            "services": [_service(s) for s in session.services],
            "volumes": [_volume(v) for v in session.volumes],
            "images": [_image(i) for i in session.images],
            "secrets": [_secret(s) for s in session.secrets],
            "security": _security(session.security) if session.security is not None else None,
        }
    )


class _Dumper(yaml.SafeDumper):
    """Block style throughout; multi-line strings as literal blocks; lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


# Characters YAML treats as line breaks besides "\n": in a plain, single-quoted or block scalar a
# reader would turn them into "\n" or a space. Double quotes are the one style that escapes them.
_OTHER_LINE_BREAKS = frozenset("\r\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    if not _OTHER_LINE_BREAKS.isdisjoint(text):
        style: str | None = '"'
    elif "\n" in text:
        style = "|"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def render_session(session: Session) -> str:
    """Render the session as YAML text (deterministic; see the module documentation)."""
    return yaml.dump(
        session_to_data(session),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )


def canonical_json(data: Any) -> bytes:
    """JSON with sorted keys and no insignificant white space, as UTF-8."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def session_hash(session: Session) -> str:
    """The session hash (64 lower-case hex) that the open engine's CAS reports and ``predecessor`` names."""
    return hashlib.sha256(HASH_DOMAIN + canonical_json(session_to_data(session))).hexdigest()
