"""Self-checking journal lines: torn tails tolerated, mid-file damage detected."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clapboard import CorruptJournalError, persistence
from clapboard.io import writeback
from clapboard.io.journal import BLOCK, Journal, padding_for, read_lines, scan

ROOT = Path(__file__).resolve().parent.parent


def make(path: Path, n: int = 5) -> list[dict]:  # type: ignore[type-arg]
    j = Journal(path)
    return [j.append({"op": "status", "detail": {"i": i, "text": "é" * i}}) for i in range(n)]


def records_bytes(path: Path) -> bytes:
    """The journal's bytes without its padding."""
    return path.read_bytes().rstrip(b" \n") + b"\n"


def test_append_and_scan(tmp_path: Path) -> None:
    recs = make(tmp_path / "j")
    assert scan(tmp_path / "j").records == recs
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]


def test_every_cut_of_the_last_record_keeps_the_prefix(tmp_path: Path) -> None:
    path = tmp_path / "j"
    recs = make(path, 3)
    data = records_bytes(path)
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    for cut in range(start, len(data)):
        path.write_bytes(data[:cut])
        assert scan(path).records == recs[:2], cut
        # the next append truncates the torn tail first and continues the chain
        rec = Journal(path).append({"op": "after-cut"})
        assert rec["seq"] == 3 and scan(path).records[-1] == rec


@settings(max_examples=100, deadline=None)
@given(garbage=st.one_of(st.binary(min_size=1, max_size=200),
                         st.integers(1, 4096).map(lambda n: b"\x00" * n)))
def test_appended_garbage_is_ignored(tmp_path_factory: pytest.TempPathFactory,
                                     garbage: bytes) -> None:
    path = tmp_path_factory.mktemp("j") / "j"
    recs = make(path, 3)
    with path.open("ab") as f:
        f.write(garbage)
    assert scan(path).records == recs
    assert Journal(path).append({"op": "next"})["seq"] == 4
    assert len(scan(path).records) == 4


def test_flipped_byte_mid_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "j"
    make(path, 4)
    data = bytearray(path.read_bytes())
    first_end = data.find(b"\n")
    data[first_end // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptJournalError):
        scan(path)


def test_dropped_record_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "j"
    make(path, 4)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1] + lines[2:]))
    with pytest.raises(CorruptJournalError):
        scan(path)


APPENDER = textwrap.dedent("""
    import sys
    from clapboard import persistence
    path, who = sys.argv[1], sys.argv[2]
    for i in range(100):
        persistence.jsonl_append_locked(path, {"who": who, "i": i, "blob": who * 100_000})
""")


def test_concurrent_appenders_large_records(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), w], cwd=ROOT)
             for w in "abcd"]
    for p in procs:
        assert p.wait(timeout=240) == 0
    lines = read_lines(path)
    assert len(lines) == 400
    assert all(r["blob"] == r["who"] * 100_000 for r in lines)
    for w in "abcd":
        assert [r["i"] for r in lines if r["who"] == w] == list(range(100))


def test_jsonl_append_locked_heals_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    persistence.jsonl_append_locked(path, {"a": 1})
    with path.open("ab") as f:
        f.write(b'{"torn": ')
    persistence.jsonl_append_locked(path, {"b": 2})
    assert read_lines(path) == [{"a": 1}, {"b": 2}]


def test_one_write_per_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    real, real_p = os.write, os.pwrite
    monkeypatch.setattr(os, "write", lambda fd, b: (writes.append(len(b)), real(fd, b))[1])
    monkeypatch.setattr(os, "pwrite",
                        lambda fd, b, at: (writes.append(len(b)), real_p(fd, b, at))[1])
    Journal(tmp_path / "j").append({"op": "x", "detail": {"blob": "y" * 300_000}})
    persistence.jsonl_append_locked(tmp_path / "k", {"blob": "z" * 300_000})
    assert len(writes) == 2


def test_meanwhile_runs_after_the_write_and_before_the_sync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``append(meanwhile=...)``: the line is in the file and its write-back started
    (on Linux) when the work runs, the sync comes after it; the work is given the
    record, the journal's inode, the line's end and the line."""
    events: list[str] = []
    real_sync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (events.append("sync"), real_sync(fd))[1])
    advised: list[tuple[int, ...]] = []
    real_advise = writeback._ADVISE
    if real_advise is not None:
        monkeypatch.setattr(writeback, "_ADVISE",
                            lambda fd, *a: (advised.append(a), real_advise(fd, *a))[1])
    path = tmp_path / "j"
    j = Journal(path)
    first = j.append({"op": "a", "detail": {}})
    assert events == ["sync"] and advised == []  # no work to overlap: no early start
    events.clear()
    seen: list[tuple[dict, int, int, bytes, bytes]] = []  # type: ignore[type-arg]

    def meanwhile(rec: dict, ino: int, end: int, line: bytes) -> None:  # type: ignore[type-arg]
        events.append("meanwhile")
        seen.append((rec, ino, end, line, path.read_bytes()))

    rec = j.append({"op": "b", "detail": {"x": 1}}, meanwhile=meanwhile)
    assert events == ["meanwhile", "sync"]
    (got, ino, end, line, data), = seen
    assert got == rec and rec["seq"] == 2 and rec["prev"] == first["crc"]
    assert ino == path.stat().st_ino and len(data) == path.stat().st_size == BLOCK
    assert data[:end].endswith(line) and data[end:] == padding_for(end)
    assert orjson.loads(line) == rec
    if real_advise is not None:
        assert advised == [(end - len(line), len(line) - 1, os.POSIX_FADV_DONTNEED)]
    assert scan(path).records == [first, rec]


def test_a_failing_meanwhile_fails_the_append_and_leaves_no_line(tmp_path: Path) -> None:
    path = tmp_path / "j"
    j = Journal(path)
    j.append({"op": "a", "detail": {}})
    before = path.read_bytes()

    def boom(*args: object) -> None:
        raise RuntimeError("the work failed")

    with pytest.raises(RuntimeError):
        j.append({"op": "b", "detail": {}}, meanwhile=boom)
    assert path.read_bytes() == before  # the padding put back
    assert j.append({"op": "c", "detail": {}})["seq"] == 2


_ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    [',"detail":', '","detail":"', '\\",\\"detail\\":', '"', "\\", "\n", "\x00"])
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANY_TEXT, inner, max_size=3),
    max_leaves=10)


@settings(max_examples=400, deadline=None)
@given(actor=_ANY_TEXT | _VALUES | st.just({"a": 1, "detail": 2}),
       at=_ANY_TEXT | st.integers(0, 2**40), detail=_VALUES, op=_VALUES, version=_VALUES,
       extra=st.dictionaries(_ANY_TEXT | st.sampled_from(["b", "cz", "crd", "d", "zz"]),
                             _VALUES, max_size=2))
def test_a_spliced_record_line_is_the_encoded_one(actor: object, at: object, detail: object,
                                                  op: object, version: object,
                                                  extra: dict[str, object]) -> None:
    """A Store record's line is its canonical bytes with the crc spliced in before
    ``,"detail":``: byte for byte what encoding the record with its crc gives, whatever
    its strings hold (quotes, that very pattern, escapes), and records of other keys
    or types are encoded whole; the crc is the one check_line verifies."""
    import orjson

    from clapboard.io.journal import check_line, encoded_record

    body = {"actor": actor, "at": at, "detail": detail, "op": op, "prev": "0badc0de",
            "seq": 7, "version": version, **extra}
    body.pop("crc", None)
    line, rec = encoded_record(body)
    assert line == orjson.dumps(rec, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    assert rec == {**body, "crc": rec["crc"]}
    assert check_line(line) is not None


def test_padding_is_a_blank_last_line_to_the_block_end(tmp_path: Path) -> None:
    """The journal ends with spaces and a newline up to the end of its last 4 KiB block:
    every other line is a record, and line-by-line JSON readers that skip blank lines
    (as ``jq`` does) read exactly the records."""
    path = tmp_path / "j"
    recs = make(path, 40)  # more than one block of lines
    data = path.read_bytes()
    assert len(data) % BLOCK == 0 and data.endswith(b" \n")
    lines = data.split(b"\n")[:-1]
    assert [orjson.loads(x) for x in lines if x.strip()] == recs
    assert lines[-1].strip() == b"" and all(x.strip() for x in lines[:-1])


def test_a_record_appended_after_the_padding_is_read_and_continued(tmp_path: Path) -> None:
    """A record appended to the file's end by another tool (``>>``), after the padding:
    the blank line before it is skipped, the record read, and the next append goes
    after it, continuing the chain."""
    from clapboard.io.journal import encode_record

    path = tmp_path / "j"
    recs = make(path, 3)
    with path.open("ab") as f:
        f.write(encode_record({"op": "by-hand", "seq": 4, "prev": recs[-1]["crc"]}))
    assert [r["seq"] for r in scan(path).records] == [1, 2, 3, 4]
    assert scan(path).tail.junk == 0
    rec = Journal(path).append({"op": "next"})
    assert rec["seq"] == 5 and [r["seq"] for r in scan(path).records] == [1, 2, 3, 4, 5]
    assert path.stat().st_size % BLOCK == 0
