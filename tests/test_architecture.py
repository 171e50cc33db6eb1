"""The layers go one way — plugin → components → resources → engine — and what runs in images stays small.

Read from the source (every import statement, module-level or not), so a lazy import inside a function
cannot slip past: the engine imports neither Pulumi nor the packages above it; the resources import no
component; the plugin, which serves both, is imported by neither. What runs in confidential images is the Go
runtime (``runtime/``): the standard library and ``golang.org/x/sys``, nothing else.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.paths import REPOSITORY

PACKAGE = "pulumi_sconify"


def imports(path: Path) -> set[str]:
    """The absolute module names ``path`` (a module below the repository's root) imports."""
    tree = ast.parse(path.read_text(), str(path))
    parts = [PACKAGE, *path.relative_to(REPOSITORY).with_suffix("").parts]
    package = parts[:-1]  # the package the module is in (for an __init__, the package itself)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                assert len(base) >= 1, f"{path}: a relative import above {PACKAGE}"
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((REPOSITORY / folder).rglob("*.py"))


def top(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


@pytest.mark.parametrize("path", modules("engine"), ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_the_engine_imports_nothing_above_it(path: Path) -> None:
    for name in imports(path):
        pulumi_sdk = top(name) == "pulumi" or (top(name).startswith("pulumi_") and top(name) != PACKAGE)
        assert not pulumi_sdk, f"{path}: imports {name}"
        if top(name) == PACKAGE:
            assert name.startswith(f"{PACKAGE}.engine"), f"{path}: imports {name}"


RUNTIME_DEPENDENCIES = {"golang.org/x/sys"}
"""The only module the runtime may need beside Go's standard library (system calls the library lacks:
extended attributes of links, ``ioctl``)."""


def go_requirements(go_mod: str) -> set[str]:
    """The modules a ``go.mod`` requires (both the one-line and the block form)."""
    found: set[str] = set()
    block = False
    for line in go_mod.splitlines():
        words = line.split("//")[0].split()
        if words[:2] == ["require", "("]:
            block = True
        elif block and words == [")"]:
            block = False
        elif block and words:
            found.add(words[0])
        elif words[:1] == ["require"] and len(words) >= 3:
            found.add(words[1])
    return found


def test_the_runtime_needs_only_go_and_its_system_calls() -> None:
    requirements = go_requirements((REPOSITORY / "runtime" / "go.mod").read_text())
    assert requirements == RUNTIME_DEPENDENCIES
    # The probe: a further requirement, in either form, is seen.
    assert go_requirements(
        "require (\n\tgolang.org/x/sys v0.50.0\n\tgithub.com/x/y v1.0.0 // indirect\n)"
    ) == {
        "golang.org/x/sys",
        "github.com/x/y",
    }
    assert go_requirements("require github.com/x/y v1.0.0") == {"github.com/x/y"}


def test_the_runtime_imports_no_cgo_and_no_unknown_module() -> None:
    """Static by construction: no ``import "C"``, and every import is the standard library, the runtime's own
    packages or an allowed module."""
    own = "github.com/pulumi-sconify/pulumi-sconify/runtime/"
    for source in (REPOSITORY / "runtime").rglob("*.go"):
        text = source.read_text()
        for imported in re.findall(r'^\s*(?:[\w.]+\s+)?"([^"]+)"$', text, re.MULTILINE):
            standard = "." not in imported.split("/")[0]
            allowed = imported.startswith(own) or any(imported.startswith(m) for m in RUNTIME_DEPENDENCIES)
            assert imported != "C" and (standard or allowed), f"{source}: imports {imported}"


@pytest.mark.parametrize(
    "path",
    [p for p in modules("provider") if "plugin" not in p.relative_to(REPOSITORY).parts],
    ids=lambda p: str(p.relative_to(REPOSITORY)),
)
def test_the_resources_import_no_component(path: Path) -> None:
    for name in imports(path):
        assert not name.startswith(f"{PACKAGE}.components"), f"{path}: imports {name}"


@pytest.mark.parametrize("path", modules("components"), ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_no_component_imports_the_plugin(path: Path) -> None:
    """The plugin serves the components (Construct) as well as the resources: it is the top of the stack,
    above the components, and nothing below it imports it."""
    for name in imports(path):
        assert not name.startswith(f"{PACKAGE}.provider.plugin"), f"{path}: imports {name}"


def test_the_package_links_are_the_folders() -> None:
    for folder in ("engine", "provider", "components"):
        link = REPOSITORY / PACKAGE / folder
        assert link.is_symlink() and link.resolve() == (REPOSITORY / folder).resolve()


def test_every_folder_of_the_package_is_a_regular_package() -> None:
    """A folder without ``__init__.py`` is a namespace package, found by accident and easy to lose."""
    for folder in ("engine", "provider", "components"):
        for directory in [REPOSITORY / folder, *(p for p in (REPOSITORY / folder).rglob("*") if p.is_dir())]:
            if directory.name == "__pycache__" or not any(directory.glob("*.py")):
                continue
            assert (directory / "__init__.py").is_file(), f"{directory} is not a package"


def python_files() -> list[Path]:
    tracked = [p for p in REPOSITORY.rglob("*.py") if ".venv" not in p.parts and "build" not in p.parts]
    return [p for p in tracked if not p.is_relative_to(REPOSITORY / PACKAGE)]


def test_no_module_is_imported_by_its_folders_bare_name() -> None:
    """From the repository's root ``engine``, ``provider`` and ``components`` are importable under their bare
    names too, which loads a second copy of every module (``a.Session is b.Session`` is false): only
    ``pulumi_sconify.<folder>`` may be imported."""
    offenders = []
    for path in python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            offenders += [
                f"{path.relative_to(REPOSITORY)}: {n}"
                for n in names
                if top(n) in ("engine", "provider", "components")
            ]
    assert offenders == []


def test_a_bare_name_import_would_be_found(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import engine.policy\nfrom provider import resources\n")
    tree = ast.parse(probe.read_text())
    found = [
        n.names[0].name if isinstance(n, ast.Import) else n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
    ]
    assert [top(str(name)) for name in found] == ["engine", "provider"]


def test_every_error_of_the_engine_is_a_sconify_error() -> None:
    """One base, so a caller (the CLI, a Pulumi provider) can tell a worded refusal from a bug."""
    import builtins
    import importlib

    from pulumi_sconify.engine.errors import SconifyError

    checked = []
    for path in modules("engine"):
        module = ".".join([PACKAGE, *path.relative_to(REPOSITORY).with_suffix("").parts]).removesuffix(
            ".__init__"
        )
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                error = getattr(importlib.import_module(module), node.name)
                assert issubclass(error, SconifyError), f"{module}.{node.name}"
                assert not hasattr(builtins, node.name), f"{module}.{node.name} shadows a builtin"
                checked.append(node.name)
    assert len(checked) >= 20


TEST_ROOMS = sorted(
    p for p in (REPOSITORY / "tests").iterdir() if p.is_dir() and p.name not in ("support", "fixtures")
)


def helper_imports_between_rooms(path: Path) -> list[str]:
    """The ``tests.*`` modules ``path`` imports that are not shared helpers: another room's test module or
    conftest (helpers live in ``tests.support``, which imports no test module)."""
    tree = ast.parse(path.read_text(), str(path))
    names = [
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0)
        for alias in (node.names if isinstance(node, ast.Import) else node.names[:1])
    ]
    return [name for name in names if top(name) == "tests" and not name.startswith("tests.support")]


@pytest.mark.parametrize(
    "path",
    [*modules("tests/support"), *(p for room in TEST_ROOMS for p in sorted(room.rglob("*.py")))],
    ids=lambda p: str(p.relative_to(REPOSITORY)),
)
def test_test_helpers_live_in_the_support_package(path: Path) -> None:
    """A test module imports helpers from ``tests.support`` only, never from another test module; the
    support package imports no test module (so a helper is written once, and found where helpers are)."""
    assert helper_imports_between_rooms(path) == [], path


def test_an_import_of_another_test_module_would_be_found(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from tests.image.test_podman import count\nfrom tests.support.cas import RunningCas\n")
    assert helper_imports_between_rooms(probe) == ["tests.image.test_podman"]


CAS_ROOMS = {
    "server": {"intake", "state", "clients"},
    "intake": set(),
    "state": {"clients"},
    "clients": set(),
}
"""Each room of the CAS and the rooms below it that it may import: the front on top, identities lowest."""


def cas_room_violations(room: str, names: set[str]) -> list[str]:
    """The imports of a module of ``room`` that reach a CAS room it may not import."""
    prefix = f"{PACKAGE}.engine.cas."
    reached = {name.removeprefix(prefix).split(".")[0] for name in names if name.startswith(prefix)}
    return sorted(reached & set(CAS_ROOMS) - CAS_ROOMS[room] - {room})


@pytest.mark.parametrize(
    "path",
    [p for room in CAS_ROOMS for p in modules(f"engine/cas/{room}")],
    ids=lambda p: str(p.relative_to(REPOSITORY)),
)
def test_the_cas_rooms_import_downwards_only(path: Path) -> None:
    room = path.relative_to(REPOSITORY / "engine" / "cas").parts[0]
    assert cas_room_violations(room, imports(path)) == [], path


def test_an_upward_import_between_cas_rooms_would_be_found() -> None:
    upward = {f"{PACKAGE}.engine.cas.server.service", f"{PACKAGE}.engine.cas.clients.identity"}
    assert cas_room_violations("state", upward) == ["server"]


@pytest.mark.parametrize("package", ["cas", "image"])
def test_each_name_of_a_rooms_face_is_found_where_it_says(package: str) -> None:
    """A face loads its names lazily: every name it lists must exist in the module it names."""
    import importlib

    face = importlib.import_module(f"{PACKAGE}.engine.{package}")
    for name in face.__all__:
        assert getattr(face, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError):
        face.no_such_name  # noqa: B018 - the lookup itself is the test


LAYERS = ("provider.plugin", "components", "provider.resources", "engine")
"""The package's folders from the top down: each imports only itself and the folders below it."""


def layer_of(module: str) -> int | None:
    name = module.removeprefix(f"{PACKAGE}.")
    return next((i for i, layer in enumerate(LAYERS) if name == layer or name.startswith(f"{layer}.")), None)


def upward_imports(layer: int, names: set[str]) -> list[str]:
    return sorted(n for n in names if (reached := layer_of(n)) is not None and reached < layer)


@pytest.mark.parametrize(
    "path",
    [p for layer in LAYERS for p in modules(layer.replace(".", "/"))],
    ids=lambda p: str(p.relative_to(REPOSITORY)),
)
def test_a_folder_imports_only_the_folders_below_it(path: Path) -> None:
    module = ".".join([PACKAGE, *path.relative_to(REPOSITORY).with_suffix("").parts])
    layer = layer_of(module)
    assert layer is not None
    assert upward_imports(layer, imports(path)) == [], path


def test_an_upward_import_between_folders_would_be_found() -> None:
    names = {f"{PACKAGE}.provider.plugin.kinds", f"{PACKAGE}.engine.errors", "pulumi"}
    assert upward_imports(LAYERS.index("components"), names) == [f"{PACKAGE}.provider.plugin.kinds"]
