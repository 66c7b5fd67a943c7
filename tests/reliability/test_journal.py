"""Faults #14-#16: torn or damaged journal tails, one write per record, concurrent appends."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clapboard import CorruptJournalError
from clapboard.io import journal as jr
from tests.reliability import harness as h

N_RECORDS = 5


def _journal(tmp: Path, n: int = N_RECORDS) -> tuple[bytes, list[int]]:
    """The records' bytes (the file without its padding) and where each line starts."""
    path = tmp / "j.jsonl"
    path.unlink(missing_ok=True)
    j = jr.Journal(path)
    for i in range(n):
        j.append({"op": "status", "i": i, "detail": {"text": "é" * (i * 7)}})
    padded = path.read_bytes()
    assert len(padded) % jr.BLOCK == 0 and padded.endswith(b" \n")
    data = padded.rstrip(b" \n") + b"\n"
    starts = [0, *[k + 1 for k, b in enumerate(data) if b == 10][:-1]]
    return data, starts


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[int]]:
    return _journal(tmp_path_factory.mktemp("j"))


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_every_cut_of_the_last_record_keeps_the_prefix(sample: tuple[bytes, list[int]],
                                                       cut: int) -> None:
    """#14: the file cut anywhere inside its last record reads as the first n-1 records."""
    data, starts = sample
    last = starts[-1]
    offset = last + cut % (len(data) - last)  # strictly inside the last record
    scan = jr.scan_bytes(data[:offset])
    assert [r["seq"] for r in scan.records] == list(range(1, N_RECORDS))
    assert scan.tail.valid_end == last
    _FIG["torn-tail cuts checked"] += 1


@settings(max_examples=200, deadline=None)
@given(junk=st.one_of(st.binary(min_size=1, max_size=300),
                      st.integers(1, 5000).map(lambda n: b"\0" * n)))
def test_garbage_after_the_last_record_is_ignored(sample: tuple[bytes, list[int]],
                                                  junk: bytes) -> None:
    """#14: zeros or random bytes appended (a crash mid-append) leave all records valid."""
    data, _ = sample
    scan = jr.scan_bytes(data + junk)
    assert [r["seq"] for r in scan.records] == list(range(1, N_RECORDS + 1))
    assert scan.tail.valid_end == len(data)
    _FIG["garbage tails checked"] += 1


@settings(max_examples=300, deadline=None)
@given(where=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_damage_followed_by_valid_records_raises(sample: tuple[bytes, list[int]], where: int,
                                                 flip: int) -> None:
    """#14: one changed byte before the last record is CorruptJournalError, never a skip."""
    data, starts = sample
    # anywhere before the newline that ends the second-to-last record (flipping that
    # newline glues the last two records into one damaged tail: see RELIABILITY.md)
    pos = where % (starts[-1] - 1)
    bad = bytearray(data)
    bad[pos] ^= flip
    with pytest.raises(CorruptJournalError):
        jr.scan_bytes(bytes(bad))
    _FIG["mid-file byte flips detected"] += 1


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=1), junk=st.binary(max_size=40))
def test_a_torn_line_over_the_padding_is_ignored_then_replaced(
        tmp_path_factory: pytest.TempPathFactory, cut: int, junk: bytes) -> None:
    """#14 with padding: an append cut short over the padding (a crash before its sync:
    the start of its line, maybe garbage after it, then the rest of the padding) reads
    as the records before it — or, when all of the record but its newline made it, with
    it (it was written whole: the padding's newline ends it) — and the next append cuts
    a torn tail away and continues the chain."""
    tmp = tmp_path_factory.mktemp("p")
    data, starts = _journal(tmp, N_RECORDS + 1)
    line = data[starts[-1]:]  # the record that is being appended
    data = data[:starts[-1]]
    path = tmp / "j.jsonl"
    torn = (line[: cut % len(line)] + junk).replace(b"\n", b"?")
    padded = data + jr.padding_for(len(data))
    path.write_bytes(padded[:len(data)] + torn + padded[len(data) + len(torn):])
    scan = jr.scan(path)
    whole = torn.rstrip(b" ") == line[:-1]
    n = N_RECORDS + whole
    assert [r["seq"] for r in scan.records] == list(range(1, n + 1))
    assert scan.tail.junk == (0 if whole else len(torn.rstrip(b" \n")))  # fsck: torn tail
    rec = jr.Journal(path).append({"op": "next"})
    assert rec["seq"] == n + 1 and jr.scan(path).records[-1] == rec
    assert jr.scan(path).tail.junk == 0
    _FIG["torn lines over padding checked"] += 1


_FIG: Counter[str] = Counter()


def test_report_figures(figures: Counter[str]) -> None:
    figures.update(_FIG)
    _FIG.clear()


def test_append_after_torn_tail_truncates_and_continues(tmp_path: Path) -> None:
    data, starts = _journal(tmp_path)
    path = tmp_path / "j.jsonl"
    path.write_bytes(data[: starts[-1] + 10])  # torn last record
    rec = jr.Journal(path).append({"op": "next"})
    assert rec["seq"] == N_RECORDS
    scan = jr.scan(path)
    assert [r["seq"] for r in scan.records] == list(range(1, N_RECORDS + 1))
    assert scan.tail.junk == 0 and scan.tail.size % jr.BLOCK == 0


_WRITER = """
import sys
from clapboard.io import journal as jr
path, kind = sys.argv[1], sys.argv[2]
big = "x" * 100_000
for i in range(3):
    if kind == "journal":
        jr.Journal(path).append({"op": "big", "i": i, "blob": big})
    else:
        jr.append_line_locked(path, {"i": i, "blob": big})
"""


@pytest.mark.parametrize("kind", ["journal", "jsonl"])
def test_one_write_per_record(kind: str, tmp_path: Path, figures: Counter[str],
                              need_strace: None) -> None:
    """#15: a record is serialised first and written with one write() (counted in a trace)."""
    path = tmp_path / "j.jsonl"
    trace = tmp_path / "t"
    subprocess.run(["strace", "-f", "-qq", "-y", "-o", str(trace), "-e", "trace=write,pwrite64",
                    sys.executable, "-c", _WRITER, str(path), kind],
                   check=True, env=h.worker_env(), cwd=h.REPO, timeout=120)
    writes = [line for line in trace.read_text().splitlines() if str(path) in line
              and not line.startswith("pread")]
    assert len(writes) == 3, writes
    assert all(int(line.rsplit("= ", 1)[1]) > 100_000 for line in writes), writes
    figures["records checked for one write() each"] += 3


def _append_many(path: str, who: int, n: int) -> None:
    blob = "y" * 100_000
    for i in range(n):
        jr.append_line_locked(path, {"who": who, "i": i, "blob": blob})


def test_concurrent_appenders(tmp_path: Path, figures: Counter[str], soak: float) -> None:
    """#15, #16: 4 processes x N appends of 100 KB records: every line parses, count exact."""
    n = 100
    path = tmp_path / "j.jsonl"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, n)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    recs = jr.read_lines(path)
    assert len(recs) == len(lines) - 1 == 4 * n
    assert Counter(r["who"] for r in recs) == {w: n for w in range(4)}
    for w in range(4):
        assert [r["i"] for r in recs if r["who"] == w] == list(range(n))
    figures["concurrent 100 KB journal appends, all valid"] += 4 * n
