"""manifest.json: what an export is, how it was made, and a hash of every file in it."""

import hashlib
import json
from pathlib import Path

MANIFEST_NAME = "manifest.json"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[dict]:
    """Every file under the folder but the manifest, sorted by name, with size and sha256."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name == MANIFEST_NAME:
            continue
        files.append({"name": name, "size": path.stat().st_size, "sha256": file_digest(path)})
    return files


def manifest_write(*, folder: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8")
