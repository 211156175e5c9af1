"""The per-test APDU table: bounded however many exchanges a test makes (first and last rows, a count)."""

import re

from harness.trace import ApduTrace

READ = bytes.fromhex("00B0000004")


def exchange(trace: ApduTrace, sw: bytes = b"\x90\x00") -> None:
    trace.command(READ)
    trace.response(b"\x30\x82" + sw, 0.1)


def test_a_short_test_keeps_and_shows_every_row():
    trace = ApduTrace()
    for _ in range(40):
        exchange(trace)
    assert len(trace.entries) == 80 and trace.elided == 0
    table = trace.as_html()
    assert table.count("<tr><td>") == 80 and "elided" not in table
    assert "<tr><td>80</td>" in table


def test_a_long_test_keeps_the_first_and_last_rows_and_counts_the_rest():
    trace = ApduTrace(head_rows=10, tail_rows=6)
    for index in range(5000):
        exchange(trace, b"\x6a\x82" if index % 5 == 0 else b"\x90\x00")
        assert len(trace.entries) <= 10 + 2 * 6  # bounded at every step, not only when logged
    assert trace.rows == 10_000
    table = trace.as_html()
    numbers = [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", table)]
    assert numbers == [*range(1, 11), *range(9995, 10_001)]  # rows keep their number in the whole test
    assert "… 9,984 rows elided" in table
    # the elided rows' status words are counted: 4992 answers in the middle, one in five 6A82
    assert re.search(r"status words: 9000 ×3,99\d, 6A82 ×99\d", table)
    text = trace.as_text().splitlines()
    assert len(text) == 17 and text[10].startswith("… 9,984 rows elided")


def test_clearing_forgets_the_elided_count_but_not_the_selection():
    trace = ApduTrace(head_rows=2, tail_rows=2)
    trace.command(bytes.fromhex("00A4040C0AD392F000260100000001"))
    trace.response(b"\x90\x00", 0.1)
    for _ in range(10):
        exchange(trace)
    assert trace.elided
    trace.clear()
    assert trace.rows == 0 and "elided" not in trace.as_html()
    trace.command(READ)
    assert trace.entries[0].name == "READ BINARY" and trace.context.applet == "jpki"


def test_the_latest_rows_stay_at_the_end_of_the_list_for_keywords_that_edit_them():
    trace = ApduTrace(head_rows=4, tail_rows=4)
    for _ in range(20):
        exchange(trace)
    trace.command(bytes.fromhex("00B0000010"))
    trace.response(b"\x6c\x04", 0.1)
    assert trace.entries[-2].hex == "00 B0 00 00 10" and trace.entries[-1].sw == 0x6C04
