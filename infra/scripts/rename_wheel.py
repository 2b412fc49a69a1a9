"""Give a wheel another distribution name and version, leaving its files untouched.

    python infra/scripts/rename_wheel.py \
        dist/pillow_simd-12.1.1.post0-cp311-cp311-linux_x86_64.whl \
        --name pillow --version 12.1.1.post0+simd --out-dir build/

pillow-simd installs the same `PIL` package as Pillow but under another distribution name, so
anything that requires `pillow` makes pip install PyPI's Pillow over it. Renamed to `pillow`
with a local version (`+simd`), the same build satisfies such requirements and can be pinned
with a constraints file (`pillow==12.1.1.post0+simd`). Only the `.dist-info` folder, METADATA's
Name and Version, and RECORD (hashes recomputed) change. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

_WHEEL_NAME = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-(?P<build>\d[^-]*))?-(?P<tags>.+)\.whl$"
)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode('ascii')}"


def _rewrite_metadata(text: str, name: str, version: str) -> str:
    head, sep, body = text.partition("\n\n")
    head = re.sub(r"(?m)^Name: .*$", f"Name: {name}", head, count=1)
    head = re.sub(r"(?m)^Version: .*$", f"Version: {version}", head, count=1)
    return head + sep + body


def rename(wheel: Path, name: str, version: str, out_dir: Path) -> Path:
    match = _WHEEL_NAME.match(wheel.name)
    if not match:
        raise SystemExit(f"{wheel.name} is not a wheel file name")
    safe_name = re.sub(r"[-_.]+", "_", name).lower()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{safe_name}-{version}-{match['tags']}.whl"
    new_dist_info = f"{safe_name}-{version}.dist-info"

    with zipfile.ZipFile(wheel) as source:
        tops = {item.filename.split("/", 1)[0] for item in source.infolist()}
        dist_infos = sorted(top for top in tops if top.endswith(".dist-info"))
        if len(dist_infos) != 1:
            raise SystemExit(f"{wheel.name}: expected one .dist-info folder, found {dist_infos}")
        old_dist_info = dist_infos[0]
        records: list[str] = []
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
            for item in source.infolist():
                if item.is_dir():
                    continue
                path = item.filename
                data = source.read(item)
                if path.startswith(old_dist_info + "/"):
                    path = new_dist_info + path[len(old_dist_info) :]
                    leaf = path.split("/", 1)[1]
                    if leaf == "RECORD":
                        continue  # rewritten below
                    if leaf == "METADATA":
                        data = _rewrite_metadata(data.decode("utf-8"), name, version).encode()
                entry = zipfile.ZipInfo(path, date_time=item.date_time)
                entry.external_attr = item.external_attr
                entry.compress_type = zipfile.ZIP_DEFLATED
                target.writestr(entry, data)
                records.append(f"{path},{_record_hash(data)},{len(data)}")
            records.append(f"{new_dist_info}/RECORD,,")
            target.writestr(f"{new_dist_info}/RECORD", "\n".join(records) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--name", required=True, help="new distribution name, e.g. pillow")
    parser.add_argument("--version", required=True, help="new version, e.g. 12.1.1.post0+simd")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    print(rename(args.wheel, args.name, args.version, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
