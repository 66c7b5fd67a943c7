"""A small ALICE-style power-loss model built from an ``strace -f -y -xx`` trace.

The trace of an operation is replayed as a list of file-system events (create,
write, truncate, fsync, rename, unlink, mkdir). Two crash models give, for every
prefix of the events, the state a power loss at that point could leave on disk:

* ``pessimistic`` — only what was made durable survives: file contents as of their
  last ``fsync``, folder entries as of the folder's last ``fsync`` (a missing folder
  fsync loses an acknowledged rename or create);
* ``metadata-first`` — every namespace operation (rename, create, unlink, mkdir)
  reached the disk but file data only as far as it was fsynced (ext4
  ``data=writeback``-like: catches a rename published before its data was synced).

Writes to the worker's stdout that say ``ACK n`` mark acknowledgements.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_LINE = re.compile(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
_STR = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')
_MARKER = "/__clapboard_marker__"


def _unhex(s: str) -> bytes:
    return bytes.fromhex(s.replace("\\x", ""))


@dataclass
class Event:
    name: str
    strings: list[bytes]
    args: str
    ret: int

    def fd(self) -> int:
        return int(re.match(r"\s*(\d+)", self.args).group(1))  # type: ignore[union-attr]


def parse(trace: Path) -> list[Event]:
    """The events after the marker syscall (successful calls only)."""
    events: list[Event] = []
    started = False
    for raw in trace.read_text().splitlines():
        m = _LINE.match(raw)
        if not m:
            continue
        name, args, ret = m.group(1), m.group(2), int(m.group(3))
        strings = [_unhex(s) for s in _STR.findall(args)]
        if not started:
            started = name.startswith(("access", "faccessat")) and \
                any(s.decode(errors="replace") == _MARKER for s in strings)
            continue
        if ret >= 0:
            events.append(Event(name, strings, args, ret))
    assert started, "marker not found"
    return events


@dataclass
class Fs:
    """Volatile and durable views of the files under ``top``."""

    top: Path
    ns: dict[str, int] = field(default_factory=dict)  # volatile: path -> inode (-1 = dir)
    durable_dirs: dict[str, dict[str, int]] = field(default_factory=dict)
    data: dict[int, bytearray] = field(default_factory=dict)  # volatile contents
    durable_data: dict[int, bytes] = field(default_factory=dict)
    fds: dict[int, tuple[int, bool, str]] = field(default_factory=dict)  # fd -> ino, append, path
    offsets: dict[int, int] = field(default_factory=dict)
    next_ino: int = 1
    acks: int = 0

    @classmethod
    def scan(cls, top: Path) -> Fs:
        fs = cls(top)
        fs.ns[str(top)] = -1
        for d, dirs, files in os.walk(top):
            for x in dirs:
                fs.ns[os.path.join(d, x)] = -1
            for x in files:
                ino = fs._new_ino()
                fs.ns[os.path.join(d, x)] = ino
                content = Path(d, x).read_bytes()
                fs.data[ino] = bytearray(content)
                fs.durable_data[ino] = content
        for path, ino in fs.ns.items():
            if ino == -1:
                fs.durable_dirs[path] = fs._children(path)
        return fs

    def _new_ino(self) -> int:
        self.next_ino += 1
        return self.next_ino

    def _children(self, d: str) -> dict[str, int]:
        return {os.path.basename(p): ino for p, ino in self.ns.items()
                if os.path.dirname(p) == d and p != d}

    def apply(self, ev: Event) -> None:
        n = ev.name
        if n == "openat":
            path = ev.strings[0].decode()
            if not path.startswith(str(self.top)):
                return
            if path not in self.ns:
                if "O_CREAT" not in ev.args:
                    return
                ino = self._new_ino()
                self.ns[path] = ino
                self.data[ino] = bytearray()
            self.fds[ev.ret] = (self.ns[path], "O_APPEND" in ev.args, path)
            self.offsets[ev.ret] = 0
        elif n == "close":
            self.fds.pop(ev.fd(), None)
        elif n in ("write", "pwrite64"):
            fd = ev.fd()
            if fd == 1 and ev.strings and ev.strings[0].startswith(b"ACK "):
                self.acks += 1
            if fd not in self.fds or self.fds[fd][0] == -1:
                return
            ino, append, _ = self.fds[fd]
            buf = self.data[ino]
            chunk = ev.strings[0][: ev.ret]
            if n == "pwrite64":
                off = int(ev.args.rsplit(",", 1)[1])
            else:
                off = len(buf) if append else self.offsets[fd]
                self.offsets[fd] = off + len(chunk)
            if len(buf) < off:
                buf.extend(b"\0" * (off - len(buf)))
            buf[off:off + len(chunk)] = chunk
        elif n == "ftruncate":
            fd = ev.fd()
            if fd in self.fds:
                size = int(ev.args.rsplit(",", 1)[1])
                buf = self.data[self.fds[fd][0]]
                del buf[size:]
                buf.extend(b"\0" * (size - len(buf)))
        elif n in ("fsync", "fdatasync"):
            fd = ev.fd()
            if fd not in self.fds:
                return
            ino, _, path = self.fds[fd]
            if ino == -1:
                self.durable_dirs[path] = self._children(path)
            else:
                self.durable_data[ino] = bytes(self.data[ino])
        elif n == "rename":
            src, dst = (s.decode() for s in ev.strings[:2])
            if src in self.ns:
                self.ns[dst] = self.ns.pop(src)
        elif n == "unlink":
            self.ns.pop(ev.strings[0].decode(), None)
        elif n == "mkdir":
            path = ev.strings[0].decode()
            self.ns[path] = -1
            self.durable_dirs.setdefault(path, {})

    def crash_state(self, model: str) -> dict[str, bytes | None]:
        """Relative path -> bytes (None: a folder) after a power loss now."""
        out: dict[str, bytes | None] = {}
        top = str(self.top)

        def content(ino: int) -> bytes:
            return self.durable_data.get(ino, b"")

        if model == "metadata-first":
            for path, ino in self.ns.items():
                if path != top:
                    out[os.path.relpath(path, top)] = None if ino == -1 else content(ino)
            return out
        stack = [top]
        while stack:
            d = stack.pop()
            for name, ino in self.durable_dirs.get(d, {}).items():
                path = os.path.join(d, name)
                out[os.path.relpath(path, top)] = None if ino == -1 else content(ino)
                if ino == -1:
                    stack.append(path)
        return out


def materialise(state: dict[str, bytes | None], dest: Path) -> None:
    dest.mkdir(parents=True)
    for rel in sorted(state):
        value = state[rel]
        p = dest / rel
        if value is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(value)
