"""The published counter policy, the bundled example and the builder that generates such policies."""

from __future__ import annotations

from importlib import resources

from pulumi_sconify.engine.policy import (
    CREATOR,
    DEFAULT_TOLERATE,
    UpdatePolicy,
    namespace_session,
    parse_session,
    random_namespace,
    render_session,
    sconified_session,
    session_hash,
)

PUBLISHED = {
    "namespace": "ns-8991241572316",
    "mrenclave": "e2f7cb1c13fa16d2a48f1727ebf1c20ac8185e72e14f647e876072e1f006377d",
    "fspf_key": "4ee511ed8963f1b8034f33cfbb57f8800a6c2f17e64e4ed89122fc25e2ee50b1",
    "fspf_tag": "849565fe4a941e2be3bcc3c9d46f40c1",
}


def test_published_counter_policy_is_accepted(scone_counter_yaml: str) -> None:
    session = parse_session(scone_counter_yaml)

    assert session.name == "ns-8991241572316/python-session"
    assert session.namespace == "ns-8991241572316"
    assert session.access_policy.read == (CREATOR,)
    assert session.access_policy.update == (CREATOR,)
    service = session.service("python-service")
    assert service.image_name == "python-service_image"
    assert service.measurements == {PUBLISHED["mrenclave"]}
    assert service.command == "python3 /code/app.py"
    assert service.environment["SCONE_LOG"] == "7"
    assert service.pwd == "/"
    assert (service.fspf_path, service.fspf_key, service.fspf_tag) == (
        "/fspf/fs.fspf",
        PUBLISHED["fspf_key"],
        PUBLISHED["fspf_tag"],
    )
    assert [v.name for v in session.volumes] == ["V1"]
    assert session.volumes[0].update_policy is UpdatePolicy.ROLLBACK_PROTECTED
    assert [(v.name, v.path) for v in session.image("python-service_image").volumes] == [("V1", "/V1")]
    assert session.security is not None
    assert session.security.attestation.tolerate == DEFAULT_TOLERATE
    assert session.security.attestation.ignore_advisories == "*"


def test_builder_generates_the_published_structure(scone_counter_yaml: str) -> None:
    """Golden test: from the same inputs, the builder yields exactly SCONE's generated policy."""
    built = sconified_session(
        namespace=PUBLISHED["namespace"],
        session="python-session",
        service="python-service",
        mrenclave=PUBLISHED["mrenclave"],
        command="python3 /code/app.py",
        fspf_key=PUBLISHED["fspf_key"],
        fspf_tag=PUBLISHED["fspf_tag"],
        volumes={"V1": "/V1"},
    )
    published = parse_session(scone_counter_yaml)
    assert built == published
    assert session_hash(built) == session_hash(published)


def test_builder_defaults_follow_sconify_image_naming() -> None:
    built = sconified_session(
        namespace=None,
        service="service",
        mrenclave="a" * 64,
        command=["python3", "/code/app.py"],
        fspf_key="b" * 64,
        fspf_tag="c" * 32,
    )
    assert built.name == "service-session"
    assert built.services[0].image_name == "service_image"
    assert built.services[0].command == ("python3", "/code/app.py")
    assert built.volumes == ()


def test_bundled_example_matches_the_published_shape(scone_counter_yaml: str) -> None:
    text = resources.files("pulumi_sconify.engine.policy").joinpath("counter-example.yaml").read_text()
    example = parse_session(text)
    published = parse_session(scone_counter_yaml)
    # Same structure; only the namespace and the example's own key, tag and measurement differ.
    assert render_session(example).count("\n") == render_session(published).count("\n")
    assert example.service("python-service").environment == published.service("python-service").environment
    assert example.images == published.images
    assert example.volumes == published.volumes


def test_namespace_session_is_creator_only() -> None:
    namespace = namespace_session(random_namespace())
    assert namespace.name.startswith("ns-")
    assert len(namespace.name) == len("ns-") + 13
    assert namespace.access_policy.effective_create_sessions == (CREATOR,)
    assert parse_session(render_session(namespace)) == namespace


def test_random_namespaces_differ() -> None:
    assert len({random_namespace() for _ in range(50)}) == 50
