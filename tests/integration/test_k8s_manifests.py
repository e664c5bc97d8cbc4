"""deploy/k8s validates with kubeconform -strict against the Kubernetes schemas, and the
validation really rejects what the API server would."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.infra import k8s_validation


@pytest.fixture(scope="module")
def tools_ready() -> None:
    """kubeconform and the schemas, fetched once into the cache (skip only if impossible)."""
    from reelstream.infra.cassandra_runtime import default_cache_dir

    cache = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        k8s_validation.ensure_kubeconform(cache)
        k8s_validation.ensure_schemas(cache)
    except k8s_validation.ValidationToolError as exc:
        pytest.skip(f"kubeconform or the Kubernetes schemas cannot be installed here: {exc}")


@pytest.mark.usefixtures("tools_ready")
def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    files = k8s_validation.manifest_files()
    names = {f.name for f in files}
    assert {"counter.yaml", "edge.yaml", "origin.yaml", "autoscaling.yaml"} <= names
    result = k8s_validation.validate(files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout, result.stdout


BREAKAGES = {
    "unknown-field.yaml": (
        "      containers:\n",
        "      bogusField: 1\n      containers:\n",
        "bogusField",
    ),
    "wrong-type.yaml": ("  replicas: 2", "  replicas: two", "/spec/replicas"),
    "bad-enum.yaml": (
        "podManagementPolicy: Parallel",
        "podManagementPolicy: 7",
        "podManagementPolicy",
    ),
}


@pytest.mark.usefixtures("tools_ready")
def test_validation_rejects_unknown_fields_and_wrong_types(tmp_path: Path) -> None:
    source = (k8s_validation.MANIFESTS_DIR / "counter.yaml").read_text()
    files = []
    for name, (original, broken, _) in BREAKAGES.items():
        assert original in source
        files.append(tmp_path / name)
        files[-1].write_text(source.replace(original, broken, 1))
    result = k8s_validation.validate(files)  # one kubeconform run for all of them
    assert result.returncode != 0
    lines = result.stdout.splitlines()
    for name, (_, _, complaint) in BREAKAGES.items():
        reported = [line for line in lines if name in line and "StatefulSet" in line]
        assert reported, result.stdout
        assert complaint in reported[0], reported[0]
    assert "Invalid: 3" in result.stdout


def test_schema_references_become_relative() -> None:
    text = (
        '{"$id": "https://kubernetes.io/api/x", "p": {"$ref": "/api/_definitions.json#/$defs/A"}}'
    )
    assert (
        k8s_validation.relocatable_schema(text) == '{"p": {"$ref": "_definitions.json#/$defs/A"}}'
    )
