"""Validating `deploy/k8s` with kubeconform against the Kubernetes JSON schemas, offline.

kubeconform downloads schemas from GitHub by default, which this project's machines cannot
reach. Both halves come from package registries instead, into `$REELSTREAM_CACHE_DIR`
(default `~/.cache/reelstream`), once:

- kubeconform itself: `go install github.com/yannh/kubeconform/cmd/kubeconform@<version>`
  from the Go module proxy;
- the schemas: the `kubernetes-validate` wheel on PyPI ships the OpenAPI-derived JSON schemas
  of every Kubernetes minor release (`kubernetes_validate/kubernetes-json-schema/
  v<version>-local-strict/<kind>-<group>-<version>.json`, the file naming kubeconform expects).
  Its files point at a shared `_definitions.json` through an absolute `$id`
  (`https://kubernetes.io/api/...`); we drop that `$id` and make the references relative so
  they resolve next to the file. The `-strict` variants reject unknown fields.

Nothing is committed: `python -m reelstream.infra.k8s_validation` (`make k8s-validate`)
fetches what is missing and validates every YAML file under deploy/k8s with `-strict`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from reelstream.infra.cassandra_runtime import default_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS_DIR = REPO_ROOT / "deploy" / "k8s"
KUBECONFORM_MODULE = "github.com/yannh/kubeconform/cmd/kubeconform"
KUBECONFORM_VERSION = "v0.8.0"
SCHEMA_PACKAGE = "kubernetes-validate"
SCHEMA_PACKAGE_VERSION = "1.37.0"
KUBERNETES_VERSION = "1.33.0"
# Files that are not Kubernetes objects (kustomize's own config).
NOT_OBJECTS = ("kustomization.yaml",)


class ValidationToolError(RuntimeError):
    """kubeconform or the schemas could not be obtained."""


def go_binary() -> str:
    found = shutil.which("go")
    if found:
        return found
    if Path("/usr/local/go/bin/go").exists():
        return "/usr/local/go/bin/go"
    raise ValidationToolError("no Go toolchain (go) to install kubeconform with")


def kubeconform_path(cache_dir: Path) -> Path:
    return cache_dir / "tools" / f"kubeconform-{KUBECONFORM_VERSION}" / "kubeconform"


def ensure_kubeconform(cache_dir: Path, timeout_s: float = 600.0) -> Path:
    """The kubeconform binary, installed from the Go module proxy when missing."""
    binary = kubeconform_path(cache_dir)
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(binary.parent)}
    command = [go_binary(), "install", f"{KUBECONFORM_MODULE}@{KUBECONFORM_VERSION}"]
    try:
        subprocess.run(command, env=env, check=True, timeout=timeout_s, capture_output=True)
    except subprocess.CalledProcessError as exc:
        raise ValidationToolError(
            f"go install failed: {exc.stderr.decode(errors='replace')}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ValidationToolError(f"go install took longer than {timeout_s:.0f} s") from exc
    return binary


def schema_dir(cache_dir: Path, kubernetes_version: str) -> Path:
    return cache_dir / "k8s-schemas" / f"v{kubernetes_version}-strict"


def relocatable_schema(text: str) -> str:
    """A schema file whose `_definitions.json` references resolve beside it."""
    document = json.loads(text.replace('"/api/_definitions.json#', '"_definitions.json#'))
    if isinstance(document, dict):
        document.pop("$id", None)
    return json.dumps(document)


def ensure_schemas(
    cache_dir: Path, kubernetes_version: str = KUBERNETES_VERSION, timeout_s: float = 300.0
) -> Path:
    """The folder of strict JSON schemas of `kubernetes_version`, fetched from PyPI if missing."""
    target = schema_dir(cache_dir, kubernetes_version)
    if (target / "_definitions.json").exists():
        return target
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{kubernetes_version}-local-strict/"
    with tempfile.TemporaryDirectory(dir=cache_dir if cache_dir.exists() else None) as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--dest", tmp,
            f"{SCHEMA_PACKAGE}=={SCHEMA_PACKAGE_VERSION}",
        ]  # fmt: skip
        try:
            subprocess.run(command, check=True, timeout=timeout_s, capture_output=True)
        except subprocess.CalledProcessError as exc:
            raise ValidationToolError(
                f"pip download failed: {exc.stderr.decode(errors='replace')}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise ValidationToolError(f"pip download took longer than {timeout_s:.0f} s") from exc
        (wheel,) = Path(tmp).glob("*.whl")
        staging = Path(tmp) / "schemas"
        staging.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            members = [
                n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".json")
            ]
            if not members:
                raise ValidationToolError(
                    f"{SCHEMA_PACKAGE} {SCHEMA_PACKAGE_VERSION} has no schemas for "
                    f"Kubernetes {kubernetes_version}"
                )
            for name in members:
                text = archive.read(name).decode()
                (staging / name[len(prefix) :]).write_text(relocatable_schema(text))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def manifest_files(root: Path = MANIFESTS_DIR) -> list[Path]:
    return sorted(p for p in root.rglob("*.yaml") if p.name not in NOT_OBJECTS)


def validate(
    files: Sequence[Path],
    cache_dir: Path | None = None,
    kubernetes_version: str = KUBERNETES_VERSION,
) -> subprocess.CompletedProcess[str]:
    """Runs kubeconform -strict -summary over `files`; the result carries its output."""
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    binary = ensure_kubeconform(cache)
    schemas = ensure_schemas(cache, kubernetes_version)
    command = [
        str(binary), "-strict", "-summary", "-output", "text",
        "-kubernetes-version", kubernetes_version,
        "-schema-location", f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        *map(str, files),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    parser.add_argument("paths", nargs="*", type=Path, help="files (default: deploy/k8s/**)")
    args = parser.parse_args(argv)
    files = [p for path in args.paths for p in (manifest_files(path) if path.is_dir() else [path])]
    try:
        result = validate(files or manifest_files(), kubernetes_version=args.kubernetes_version)
    except ValidationToolError as exc:
        print(f"k8s-validate: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
