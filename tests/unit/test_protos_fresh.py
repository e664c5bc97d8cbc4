"""The generated modules in protos/ must match what `make proto` makes from the .proto files."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    (tmp_path / "protos").mkdir()
    for proto in (ROOT / "protos").glob("*.proto"):
        shutil.copy(proto, tmp_path / "protos")
    bin_dir = str(Path(sys.executable).parent)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--grpc_python_out=.",
            "--mypy_out=.",
            "--mypy_grpc_out=.",
            *sorted(p.name and f"protos/{p.name}" for p in (ROOT / "protos").glob("*.proto")),
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    fresh = sorted(p.name for p in (tmp_path / "protos").glob("*_pb2*"))
    assert fresh, "protoc produced nothing"
    stale = [
        name
        for name in fresh
        if not (ROOT / "protos" / name).exists()
        or (ROOT / "protos" / name).read_bytes() != (tmp_path / "protos" / name).read_bytes()
    ]
    assert not stale, f"regenerate with `make proto`: {stale}"
