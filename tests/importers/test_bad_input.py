"""Bad input ends in one sentence naming the file and line; what was written stays as it was."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from tardis_files import (
    INTERVAL,
    read_lines,
    snapshots,
    tardis_file,
    tree,
    write_csv,
)

from bookcast.errors import UserError
from collector.importers.tardis import import_tardis

L2_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"


@pytest.fixture(scope="module")
def l2_lines(tardis_dir):
    header, lines = read_lines(tardis_file(tardis_dir, "binance", "incremental_book_L2"))
    assert header == L2_HEADER
    return lines[:20_000]  # the snapshot (2,000 rows) and about 40 s of updates


@pytest.fixture
def data_dir(tardis_dir, tmp_path):
    """A data root already holding an import, which no failed import may touch."""
    root = tmp_path / "data"
    import_tardis([tardis_file(tardis_dir, "binance", "trades")], root, INTERVAL)
    return root


def refused(data_dir, path, **options) -> str:
    before = tree(data_dir)
    with pytest.raises(UserError) as err:
        import_tardis([path], data_dir, INTERVAL, options.pop("depth", 5), **options)
    assert tree(data_dir) == before
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]
    return str(err.value)


def edited(lines, line_number, text):
    """The lines with file line `line_number` (header = 1) replaced by `text`."""
    out = list(lines)
    out[line_number - 2] = text
    return out


def test_a_header_of_no_known_data_type_names_the_file_and_line_1(data_dir, tmp_path):
    path = write_csv(tmp_path / "x.csv", "time,bid,ask", ["1,2,3"])
    assert refused(data_dir, path) == (
        f"'{path}' line 1: the header 'time,bid,ask' is not a tardis data type bookcast imports "
        f"(incremental_book_L2, book_snapshot_N, quotes, trades).")
    ticker = write_csv(tmp_path / "t.csv", "exchange,symbol,timestamp,local_timestamp,"
                       "funding_timestamp,funding_rate,predicted_funding_rate,open_interest,"
                       "last_price,index_price,mark_price", ["binance-futures,BTCUSDT,1,1,,,,,,,"])
    assert refused(data_dir, ticker).startswith(f"'{ticker}' line 1: a tardis derivative_ticker "
                                                f"file;")
    liquidations = write_csv(tmp_path / "binance-futures_liquidations_2024-08-08_BTCUSDT.csv",
                             "exchange,symbol,timestamp,local_timestamp,id,side,price,amount",
                             ["binance-futures,BTCUSDT,1,1,1,buy,1,1"])
    assert "a tardis liquidations file" in refused(data_dir, liquidations)


@pytest.mark.parametrize(("line", "text", "sentence"), [
    (5000, "binance,BTCUSDT,1,1,false,bid,61800.00", "expected 8 columns (exchange,symbol,"
     "timestamp,local_timestamp,is_snapshot,side,price,amount), found 7"),
    (5000, "binance,BTCUSDT,1723161262000000,1723161261000000,false,bid,abc,1.0",
     "price 'abc' is not a number"),
    (5000, "binance,BTCUSDT,1723161262000000,1723161261000000,false,bid,1.12345678901,1.0",
     "price '1.12345678901' has more than 10 decimals"),
    (5000, "binance,BTCUSDT,1723161262000000,1723161261000000,maybe,bid,61800.00,1.0",
     "is_snapshot 'maybe' is not true or false"),
    (5000, "binance,BTCUSDT,1723161262000000,,false,bid,61800.00,1.0",
     "the local_timestamp field is empty"),
])
def test_a_malformed_line_names_its_line(l2_lines, data_dir, tmp_path, line, text, sentence):
    lines = list(l2_lines)
    text = text.replace("1723161261000000", lines[line - 2].split(",")[3])
    path = write_csv(tmp_path / "bad.csv.gz", L2_HEADER, edited(lines, line, text))
    assert refused(data_dir, path) == f"'{path}' line {line}: {sentence}."


def row_with(line: str, **fields: str) -> str:
    names = L2_HEADER.split(",")
    values = line.split(",")
    for name, value in fields.items():
        values[names.index(name)] = value
    return ",".join(values)


@pytest.mark.parametrize(("fields", "sentence"), [
    ({"side": "bidd"}, "side 'bidd' is neither 'bid' nor 'ask'"),
    ({"amount": "-1.5"}, "amount -1.5 is negative"),
    ({"price": ""}, "the price field is empty"),
    ({"exchange": "binance-futures"}, "exchange 'binance-futures' in a file of 'binance'; a "
                                      "file holds one exchange"),
])
def test_a_value_the_book_cannot_take_names_its_line(l2_lines, data_dir, tmp_path, fields,
                                                     sentence):
    lines = edited(l2_lines, 7000, row_with(l2_lines[7000 - 2], **fields))
    path = write_csv(tmp_path / "bad.csv.gz", L2_HEADER, lines)
    assert refused(data_dir, path) == f"'{path}' line 7000: {sentence}."


def test_a_row_far_out_of_receive_order_names_its_line(l2_lines, data_dir, tmp_path):
    line = 15_000
    local = int(l2_lines[line - 2].split(",")[3])
    lines = edited(l2_lines, line, row_with(l2_lines[line - 2], local_timestamp=str(local - 5_000_000)))
    path = write_csv(tmp_path / "late.csv.gz", L2_HEADER, lines)
    assert refused(data_dir, path) == (
        f"'{path}' line {line}: its local_timestamp is 5 s before a row above it, more than "
        f"the 1 s a file may be out of order; sort the file by local_timestamp.")


def test_files_that_hold_no_book_say_so(l2_lines, data_dir, tmp_path):
    empty = tmp_path / "empty.csv.gz"
    empty.write_bytes(b"")
    assert refused(data_dir, empty) == f"The file '{empty}' is empty."
    header_only = write_csv(tmp_path / "header.csv.gz", L2_HEADER, [])
    assert refused(data_dir, header_only) == f"'{header_only}' holds no data rows."
    updates_only = write_csv(tmp_path / "nosnap.csv.gz", L2_HEADER,
                             [line for line in l2_lines if ",true," not in line])
    assert refused(data_dir, updates_only) == (
        f"'{updates_only}' holds no book snapshot for BTCUSDT (no is_snapshot=true rows), so no "
        f"book could be built.")
    missing = tmp_path / "missing.csv.gz"
    assert refused(data_dir, missing) == f"The file '{missing}' does not exist."
    assert refused(data_dir, tmp_path) == f"'{tmp_path}' is a directory, not a CSV file."


def test_a_truncated_download_is_refused_and_nothing_is_kept(tardis_dir, data_dir, tmp_path):
    whole = tardis_file(tardis_dir, "binance", "incremental_book_L2").read_bytes()
    path = tmp_path / "truncated.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    message = refused(data_dir, path)
    assert message.startswith(f"The file '{path}' is corrupt or truncated after line ")


def test_depth_beyond_a_snapshot_files_levels_is_refused(tardis_dir, data_dir):
    path = tardis_file(tardis_dir, "binance", "book_snapshot_25")
    assert refused(data_dir, path, depth=30) == (
        f"'{path}' is book_snapshot_25, 25 levels a side; --depth 30 asks for more than it "
        f"holds (use --depth 25 or less).")


def test_two_book_types_of_one_symbol_are_refused(tardis_dir, data_dir):
    l2 = tardis_file(tardis_dir, "binance", "incremental_book_L2")
    top = tardis_file(tardis_dir, "binance", "book_snapshot_25")
    before = tree(data_dir)
    with pytest.raises(UserError, match="both give binance-spot BTCUSDT snapshots; import one"):
        import_tardis([l2, top], data_dir, INTERVAL, 5)
    assert tree(data_dir) == before


def test_a_crossed_book_is_a_counted_warning_and_no_rows_until_the_next_snapshot(
        l2_lines, tmp_path):
    line = 10_000
    local = l2_lines[line - 2].split(",")[3]
    # end of the update received at `local`: a bid far above every ask
    last = max(i for i, x in enumerate(l2_lines) if x.split(",")[3] == local)
    crossing = row_with(l2_lines[last], side="bid", price="99999.00000000", amount="1.0")
    lines = [*l2_lines[: last + 1], crossing, *l2_lines[last + 1:]]
    path = write_csv(tmp_path / "crossed.csv.gz", L2_HEADER, lines)
    summary = import_tardis([path], tmp_path / "out", INTERVAL, 5)
    skipped = sum(1 for x in l2_lines[last + 1:] if ",false," in x)
    assert summary.warnings.counts == {"crossed books": 1, "update rows without a book": skipped}
    example = summary.warnings.examples[0]
    assert example.startswith(f"'{path}' line {last + 3}: the BTCUSDT book crossed (bid "
                              f"99999.0 >= ask 618")
    assert example.endswith("); no rows until its next snapshot")
    (stream,) = summary.streams
    assert stream.crossed == 1
    rows = snapshots(tmp_path / "out")
    assert rows["ts"].dt.epoch("ns").max() < int(local) * 1000
    assert (rows["bid_px"].list.first() < rows["ask_px"].list.first()).all()


def test_an_import_overlapping_existing_rows_is_refused_and_a_reimport_replaces(
        tardis_dir, data_dir):
    trades = tardis_file(tardis_dir, "binance", "trades")
    before = tree(data_dir)
    import_tardis([trades], data_dir, INTERVAL)  # the same file again: the same parts
    assert tree(data_dir) == before
    header, lines = read_lines(trades)
    shifted = write_csv(data_dir.parent / "later.csv.gz", header, lines[100:])
    with pytest.raises(UserError, match=r"already holds rows from 2024-08-08T23:54:14\.087896Z "
                                        r"to .*, which this import overlaps; remove it or "
                                        r"import into another --data-dir"):
        import_tardis([shifted], data_dir, INTERVAL)
    assert tree(data_dir) == before


def bookcast(*args: str) -> subprocess.Popen:
    # Ctrl-C as at a terminal: a shell's background jobs start with SIGINT ignored
    return subprocess.Popen([sys.executable, "-m", "bookcast", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_the_command_line_says_one_sentence_and_exits_2(l2_lines, data_dir, tmp_path):
    lines = edited(l2_lines, 9000, row_with(l2_lines[9000 - 2], side="bidd"))
    path = write_csv(tmp_path / "bad.csv.gz", L2_HEADER, lines)
    before = tree(data_dir)
    proc = bookcast("import", "tardis", str(path), "--data-dir", str(data_dir), "-q")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [
        f"error: '{path}' line 9000: side 'bidd' is neither 'bid' nor 'ask'."]
    assert tree(data_dir) == before
    proc = bookcast("import", "tardis", str(path), "--data-dir", str(data_dir), "--from",
                    "yesterday")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and err.count("\n") == 1 and "'yesterday'" in err


def process_state(pid: int) -> str:
    """The kernel's one-letter state of a process: 'T' once a SIGSTOP has taken hold."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def staged_parts(data_dir) -> list:
    """The finished files an import has staged so far (its rows already on disk)."""
    return [p for staging in data_dir.glob(".import-*") for p in staging.rglob("*.parquet")
            if not p.name.startswith(".")]


def freeze(proc: subprocess.Popen, deadline: float) -> None:
    """SIGSTOP the process and wait until the kernel says it is stopped."""
    proc.send_signal(signal.SIGSTOP)
    while process_state(proc.pid) != "T":
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c", "sigterm"])
def test_an_interrupt_in_the_middle_of_a_long_import_leaves_the_data_root_as_it_was(
        tardis_dir, data_dir, signum, status):
    # full depth at 10 ms: a file is cut every 100 rows, about a second of the capture's
    # minutes, so finished files are staged long before the end
    l2 = tardis_file(tardis_dir, "binance-futures", "incremental_book_L2")
    before = tree(data_dir)
    proc = bookcast("import", "tardis", str(l2), "--data-dir", str(data_dir),
                    "--interval", "10ms", "-q")
    deadline = time.monotonic() + 240
    # The import is looked at only while it is stopped, so it cannot finish between the
    # look and the signal however busy the machine is: once it has staged finished files
    # (rows really written, which only the discard may remove), the signal is queued while
    # it is still stopped and arrives the moment it runs again.
    try:
        while True:
            freeze(proc, deadline)
            if staged_parts(data_dir):
                break
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        proc.send_signal(signum)
    finally:
        proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert tree(data_dir) == before
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]


def test_the_staging_of_a_killed_import_is_removed_by_the_next_one(tardis_dir, data_dir,
                                                                   caplog):
    dead = data_dir / ".import-4194305-deadbeef"  # above any pid_max: that import is gone
    (dead / "snapshots").mkdir(parents=True)
    (dead / "snapshots" / "part-1.parquet").write_bytes(b"half a file")
    with caplog.at_level("INFO", logger="bookcast.collector"):
        import_tardis([tardis_file(tardis_dir, "binance", "trades")], data_dir, INTERVAL)
    assert not dead.exists()
    assert any("left by an import that did not finish" in r.getMessage() for r in caplog.records)
