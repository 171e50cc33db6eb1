"""Property tests: rendering is deterministic and lossless, and the hash follows meaning, not form."""

from __future__ import annotations

import dataclasses
import hashlib
import string

import yaml
from hypothesis import given, settings, strategies as st

from pulumi_sconify.engine.policy import (
    AccessPolicy,
    Attestation,
    AttestationMode,
    AzureCvmReference,
    Image,
    ImageVolume,
    InjectionFile,
    Platforms,
    Secret,
    SecretKind,
    Security,
    Service,
    ServiceAttestation,
    Session,
    SevSnpReference,
    SnpTcb,
    TdxReference,
    UpdatePolicy,
    Volume,
    parse_session,
    render_session,
    session_from_data,
    session_hash,
    validate_session,
)

NAME_CHARS = string.ascii_letters + string.digits + "_.~-"
names = st.text(NAME_CHARS, min_size=1, max_size=24).filter(lambda n: n not in {".", ".."})
session_names = st.lists(names, min_size=1, max_size=3).map("/".join)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
hex32 = st.text("0123456789abcdef", min_size=32, max_size=32)
hex96 = st.text("0123456789abcdef", min_size=96, max_size=96)
levels = st.integers(0, 255)
tcbs = st.builds(SnpTcb, bootloader=levels, tee=levels, snp=levels, microcode=levels, fmc=levels)
measurement_lists = st.lists(hex96, min_size=1, max_size=2, unique=True).map(tuple)


def registers(maximum: int, values: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[tuple[int, str], ...]]:
    return st.dictionaries(st.integers(0, maximum), values, max_size=3).map(
        lambda r: tuple(sorted(r.items()))
    )


platforms = st.builds(
    Platforms,
    sev_snp=st.one_of(
        st.none(),
        st.builds(
            SevSnpReference, measurements=measurement_lists, minimum_tcb=tcbs, maximum_vmpl=st.integers(0, 3)
        ),
    ),
    tdx=st.one_of(st.none(), st.builds(TdxReference, mrtd=measurement_lists, rtmrs=registers(3, hex96))),
    azure_cvm=st.one_of(
        st.none(),
        st.builds(
            AzureCvmReference,
            # PCRs 0 and 7 never read zero after a measured boot: zero there is refused as a placeholder.
            pcrs=registers(23, hex64).filter(
                lambda pcrs: bool(pcrs) and not any(i in (0, 7) and set(v) == {"0"} for i, v in pcrs)
            ),
            measurements=st.lists(hex96, max_size=2, unique=True).map(tuple),
            minimum_tcb=tcbs,
        ),
    ),
)
path_parts = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
paths = st.one_of(st.just("/"), st.lists(path_parts, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)))
# Any text without the placeholder syntax: YAML must carry quotes, newlines, unicode and control
# characters (escaped) through unchanged.
free_text = st.text(max_size=40).filter(lambda t: "$$" not in t)
access_entries = st.one_of(
    st.just(("CREATOR",)),
    st.just(("ANY",)),
    st.just(("NONE",)),
    st.lists(st.one_of(st.just("CREATOR"), hex64), min_size=1, max_size=3, unique=True).map(tuple),
)
commands = st.one_of(
    st.lists(path_parts, min_size=1, max_size=4).map(" ".join),
    st.tuples(path_parts, st.lists(free_text, max_size=3)).map(lambda c: (c[0], *c[1])),
)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    volume_names = draw(st.lists(names, max_size=3, unique=True))
    volumes = []
    for name in volume_names:
        key, tag = draw(st.one_of(st.tuples(st.none(), st.none()), st.tuples(hex64, hex32)))
        volumes.append(Volume(name, key, tag, update_policy=draw(st.sampled_from(UpdatePolicy))))
    secret_names = draw(st.lists(names, max_size=3, unique=True))
    secrets: list[Secret] = []
    for name in secret_names:
        kind = draw(st.sampled_from([SecretKind.ASCII, SecretKind.BINARY, SecretKind.PRIVATE_KEY]))
        if kind is SecretKind.ASCII:
            value, size = draw(
                st.one_of(
                    st.tuples(free_text.filter(bool), st.none()), st.tuples(st.none(), st.integers(1, 4096))
                )
            )
        elif kind is SecretKind.BINARY:
            value, size = draw(hex32), None
        else:
            value, size = None, None
        secrets.append(Secret(name, kind, value=value, size=size, export_public=draw(st.booleans())))
    image_names = draw(st.lists(names, max_size=2, unique=True))
    images = []
    for name in image_names:
        mounted = draw(st.lists(st.sampled_from(volume_names), unique=True)) if volume_names else []
        mount_paths = draw(st.lists(paths, min_size=len(mounted), max_size=len(mounted), unique=True))
        files = draw(st.lists(st.tuples(paths, free_text), max_size=2, unique_by=lambda f: f[0]))
        images.append(
            Image(
                name,
                tuple(ImageVolume(v, p) for v, p in zip(mounted, mount_paths, strict=True)),
                tuple(InjectionFile(p, c) for p, c in files),
            )
        )
    services = []
    for name in draw(st.lists(names, max_size=3, unique=True)):
        with_fspf = draw(st.booleans())
        placeholders = [f"$$SCONE::{s}$$" for s in secret_names]
        env_values = st.one_of(free_text, st.sampled_from(placeholders)) if placeholders else free_text
        services.append(
            Service(
                name=name,
                image_name=draw(st.one_of(st.none(), st.sampled_from(image_names))) if image_names else None,
                mrenclaves=tuple(draw(st.lists(hex64, max_size=2, unique=True))),
                attestation=tuple(ServiceAttestation((m,)) for m in draw(st.lists(hex64, max_size=1))),
                command=draw(st.one_of(st.none(), commands)),
                environment=draw(
                    st.dictionaries(
                        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True), env_values, max_size=4
                    )
                ),
                pwd=draw(st.one_of(st.none(), paths)),
                fspf_path=draw(paths) if with_fspf else None,
                fspf_key=draw(hex64) if with_fspf else None,
                fspf_tag=draw(hex32) if with_fspf else None,
            )
        )
    security = draw(
        st.one_of(
            st.none(),
            st.builds(
                lambda mode, tolerate, advisories, platforms: Security(
                    Attestation(
                        # mode hardware needs a platform (a parse rule the model does not carry).
                        None if mode is AttestationMode.HARDWARE and platforms == Platforms() else mode,
                        tolerate,
                        advisories,
                        platforms,
                    )
                ),
                st.one_of(st.none(), st.sampled_from(AttestationMode)),
                st.lists(st.sampled_from(["debug-mode", "hyperthreading", "outdated-tcb"]), unique=True).map(
                    tuple
                ),
                st.one_of(
                    st.none(),
                    st.just("*"),
                    st.lists(st.just("INTEL-SA-00334"), min_size=1, max_size=1).map(tuple),
                ),
                platforms,
            ),
        )
    )
    return Session(
        name=draw(session_names),
        predecessor=draw(st.one_of(st.none(), hex64)),
        access_policy=AccessPolicy(
            draw(access_entries), draw(access_entries), draw(st.one_of(st.none(), access_entries))
        ),
        services=tuple(services),
        volumes=tuple(volumes),
        images=tuple(images),
        secrets=tuple(secrets),
        security=security,
    )


@settings(max_examples=300, deadline=None)
@given(sessions())
def test_render_then_parse_is_identity(session: Session) -> None:
    text = render_session(session)
    assert parse_session(text) == session
    assert render_session(parse_session(text)) == text
    assert validate_session(session) == session


@settings(max_examples=100, deadline=None)
@given(sessions())
def test_hash_ignores_form_and_follows_meaning(session: Session) -> None:
    digest = session_hash(session)
    assert len(digest) == 64
    # The same data in another layout (flow style, sorted keys, a comment) has the same hash.
    data = yaml.safe_load(render_session(session))
    other_form = "# reformatted\n" + yaml.safe_dump(data, sort_keys=True, default_flow_style=True, width=60)
    assert session_hash(parse_session(other_form)) == digest
    # Any change of meaning changes it: here, the history link.
    other = "0" * 64 if session.predecessor != "0" * 64 else "1" * 64
    assert session_hash(dataclasses.replace(session, predecessor=other)) != digest


def test_defaults_written_out_or_left_out_are_the_same_session() -> None:
    short = session_from_data({"name": "s", "version": "0.3", "volumes": [{"name": "V1"}]})
    explicit = session_from_data(
        {
            "name": "s",
            "version": "0.3",
            "access_policy": {"read": ["CREATOR"], "update": ["CREATOR"]},
            "volumes": [{"name": "V1", "update_policy": "rollback_protected"}],
        }
    )
    assert short == explicit
    assert session_hash(short) == session_hash(explicit)


def test_hash_is_the_documented_canonical_form(scone_counter_yaml: str) -> None:
    """Pins the canonical form of docs/policy.md, written out by hand: changing it silently would
    orphan every session stored in a CAS (their successors name the old hashes)."""
    canonical = (
        '{"access_policy":{"read":["CREATOR"],"update":["CREATOR"]},'
        '"images":[{"name":"python-service_image","volumes":[{"name":"V1","path":"/V1"}]}],'
        '"name":"ns-8991241572316/python-session",'
        '"security":{"attestation":{"ignore_advisories":"*","tolerate":["debug-mode","hyperthreading",'
        '"insecure-igpu","outdated-tcb","software-hardening-needed","insecure-configuration"]}},'
        '"services":[{"command":"python3 /code/app.py","environment":{"LANG":"C.UTF-8",'
        '"PATH":"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","SCONE_LOG":"7","SCONE_MODE":"hw"},'
        '"fspf_key":"4ee511ed8963f1b8034f33cfbb57f8800a6c2f17e64e4ed89122fc25e2ee50b1","fspf_path":"/fspf/fs.fspf",'
        '"fspf_tag":"849565fe4a941e2be3bcc3c9d46f40c1","image_name":"python-service_image",'
        '"mrenclaves":["e2f7cb1c13fa16d2a48f1727ebf1c20ac8185e72e14f647e876072e1f006377d"],'
        '"name":"python-service","pwd":"/"}],"version":"0.3","volumes":[{"name":"V1"}]}'
    )
    expected = hashlib.sha256(b"sconify-session-v1\n" + canonical.encode()).hexdigest()
    assert session_hash(parse_session(scone_counter_yaml)) == expected
