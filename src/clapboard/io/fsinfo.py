"""Which filesystem a path lives on, to refuse those whose locks cannot be trusted."""

from __future__ import annotations

import os
from pathlib import Path

# flock on these is emulated, local to one client, or absent.
NETWORK_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs",
    "fuse", "fuseblk", "sshfs", "davfs", "ncpfs", "gpfs", "beegfs", "virtiofs",
})


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def filesystem_type(path: Path | str) -> str:
    """The mount type of the nearest existing ancestor of ``path`` ('' if unknown)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p.parent != p:
        p = p.parent
    real = os.path.realpath(p)
    best, best_type = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5:
                    continue
                mount_point = _unescape(fields[4])
                fstype = right.split()[0] if right.split() else ""
                inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, best_type = mount_point, fstype
    except OSError:
        return ""
    return best_type


def is_network_fs(fstype: str) -> bool:
    return fstype in NETWORK_FS_TYPES or fstype.startswith("fuse.")
