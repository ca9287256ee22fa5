"""Compile protos/ into the committed Python package (``make protos``).

Our .proto files import Envoy's API, whose .proto sources the installed xds-protos does not
ship: protoc reads those from a descriptor set built from the registered descriptors instead,
so the generated code matches the Envoy types authz serves.

``--check`` compiles into a temporary folder and exits 1 when the committed code differs.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
SOURCES = ("authz/admin/v1/admin.proto",)
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _dependencies() -> descriptor_pb2.FileDescriptorSet:
    from envoy.service.auth.v3 import external_auth_pb2
    from google.protobuf import timestamp_pb2

    out = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(fd: FileDescriptor) -> None:
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            add(dep)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        out.file.append(proto)

    add(external_auth_pb2.DESCRIPTOR)
    add(timestamp_pb2.DESCRIPTOR)
    return out


def compile_into(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        deps = Path(tmp) / "deps.pb"
        deps.write_bytes(_dependencies().SerializeToString())
        args = [
            "protoc",
            f"--descriptor_set_in={deps}",
            f"-I{PROTOS}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *SOURCES,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
    files = []
    for source in SOURCES:
        stem = source.removesuffix(".proto")
        files += [Path(stem + suffix) for suffix in GENERATED]
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed code is out of date")
    args = parser.parse_args()
    if not args.check:
        for rel in compile_into(ROOT):
            print(f"generated {rel}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stale = [rel for rel in compile_into(Path(tmp)) if not _same(Path(tmp) / rel, ROOT / rel)]
    if stale:
        print("generated code is out of date (run `make protos`): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


def _same(a: Path, b: Path) -> bool:
    return b.exists() and filecmp.cmp(a, b, shallow=False)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
