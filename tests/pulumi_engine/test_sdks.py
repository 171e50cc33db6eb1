"""Every language: the package's SDKs generated from its schema by Pulumi's own code generators, and a Go
program using the generated Go SDK, run by the real engine. (TypeScript: the SDK is generated and its
types checked by the TypeScript compiler, see below.)"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cas import RunningCas
from tests.support.paths import REPOSITORY
from tests.support.policies import counter, namespace, text
from tests.support.pulumi.engine import PROGRAMS, Engine

pytestmark = pytest.mark.slow
SCHEMA = REPOSITORY / "provider" / "plugin" / "schema.json"
SDK_MODULE = "github.com/pulumi-sconify/pulumi-sconify/sdk"


def pulumi_version() -> str:
    """The engine's version, as the build script pins it (the Go SDK is taken at the same one)."""
    found = re.search(r"^PULUMI_VERSION=(v[0-9.]+)$", (REPOSITORY / ".ci" / "build-pulumi").read_text(), re.M)
    assert found
    return found.group(1)


def generate(engine: Engine, language: str, out: Path) -> Path:
    subprocess.run([str(engine.binaries / "gen-sdk"), language, str(SCHEMA), str(out)], check=True)
    return out


GO = shutil.which("go", path="/usr/local/go/bin") or "go"
"""The machine's Go (1.26), ahead of Debian's older one that .ci/setup installs for other tests."""
GO_BUILD_CACHE = Path.home() / ".cache" / "go-build"


def go(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [GO, *arguments],
        cwd=cwd,
        # Go's own build cache, shared with .ci/build-pulumi: the suite points XDG_CACHE_HOME (Go's default
        # cache's parent) at an empty directory per test, which made every run compile the Pulumi SDK anew.
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOCACHE": str(GO_BUILD_CACHE)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_the_go_sdk_names_things_as_go_does(engine: Engine, tmp_path: Path) -> None:
    sdk = generate(engine, "go", tmp_path / "go")
    session = (sdk / "sconify" / "casSession.go").read_text()
    assert "CasCaCertificate pulumi.StringInput" in session and "IdentityKey pulumi.StringInput" in session
    assert "_" not in re.findall(r"^\s+(\w+) pulumi\.\w+Input$", session, re.M)[0]
    service = (sdk / "sconify" / "confidentialStatefulService.go").read_text()
    assert "NativeImage pulumi.StringInput" in service and "Native_image" not in service
    assert "WorkloadType" in (sdk / "sconify" / "pulumiEnums.go").read_text()


def test_a_go_program_with_the_generated_sdk_runs_under_the_real_engine(
    engine: Engine, cas: RunningCas, tmp_path: Path
) -> None:
    version = pulumi_version()
    sdk = tmp_path / "sdk"
    generate(engine, "go", sdk / "go")
    (sdk / "go.mod").write_text(
        f"module {SDK_MODULE}\n\ngo 1.26.6\n\nrequire github.com/pulumi/pulumi/sdk/v3 {version}\n"
    )
    program = tmp_path / "program"
    program.mkdir()
    shutil.copy(PROGRAMS / "go" / "main.go", program / "main.go")
    (program / "go.mod").write_text(
        "module sconify.local/go-program\n\ngo 1.26.6\n\n"
        f"require (\n\tgithub.com/pulumi/pulumi/sdk/v3 {version}\n\t{SDK_MODULE} v0.0.0\n)\n\n"
        f"replace {SDK_MODULE} => {sdk}\n\n"
        # The Pulumi SDK's own pins (its go.mod), which a module that requires it must repeat.
        "replace golang.org/x/text => golang.org/x/text v0.41.0\n\n"
        "replace github.com/atotto/clipboard => "
        "github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e\n"
    )
    go(["mod", "tidy"], program)
    go(["build", "-o", "program", "."], program)

    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [str(program / "program")],
        env=engine.environment(
            PULUMI_ROOT=str(engine.binaries.parent),
            WORK=str(work),
            CAS=cas.address,
            CAS_CA=cas.ca.read_text(),
            NAMESPACE_POLICY=namespace(),
            SERVICE_POLICY=text(counter()),
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    session, summary = done.stdout.strip().split(" ", 1)
    assert session == "ns-1/python-session" and summary == "map[same:4]"


def node_modules() -> Path:
    """What .ci/setup installed from tests/pulumi_engine/node (keyed by its lock file)."""
    lock = Path(__file__).parent / "node" / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    found = Path.home() / ".cache" / "pulumi-sconify" / f"node-{digest}" / "node_modules"
    assert found.is_dir(), f"{found}: installed by .ci/setup (npm ci)"
    return found


EXAMPLE = REPOSITORY / "examples" / "typescript" / "index.ts"


def test_the_readmes_typescript_program_compiles_against_the_generated_sdk(
    engine: Engine, tmp_path: Path
) -> None:
    """The README's TypeScript example is this file, and the TypeScript compiler accepts it against the
    SDK generated from the schema (camelCase names, the WorkloadType enum, object types) and Pulumi's own
    Node.js packages from npm; a misspelt input is refused by name (the check can fail)."""
    readme = (REPOSITORY / "README.md").read_text()
    assert EXAMPLE.read_text().strip() in readme
    project = tmp_path / "project"
    project.mkdir()
    (project / "node_modules").symlink_to(node_modules())
    generate(engine, "nodejs", project / "sdk")
    (project / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "target": "es2020",
                    "module": "commonjs",
                    "moduleResolution": "node",
                    "esModuleInterop": True,
                    "skipLibCheck": True,
                    "baseUrl": ".",
                    "paths": {"@pulumi-sconify/sconify": ["./sdk"]},
                },
                "files": ["index.ts"],
            }
        )
    )
    tsc = [str(node_modules() / "typescript" / "bin" / "tsc"), "-p", str(project / "tsconfig.json")]
    shutil.copy(EXAMPLE, project / "index.ts")
    checked = subprocess.run(tsc, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout[-4000:]

    (project / "index.ts").write_text(EXAMPLE.read_text().replace("nativeImage:", "native_image:"))
    refused = subprocess.run(tsc, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "native_image" in refused.stdout
