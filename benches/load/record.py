#!/usr/bin/env python3
"""Writes RESULT lines into BENCHMARKS.md between <!-- NAME:begin --> and
<!-- NAME:end -->, stamped with the time and the script that made them.

    record.py NAME RESULTS_FILE SCRIPT
"""
import datetime
import pathlib
import sys

name, results, script = sys.argv[1:4]
doc = pathlib.Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
res = pathlib.Path(results).read_text().strip()
text = doc.read_text()
start, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
block = f"{start}\n```text\n# {stamp} UTC, {script}\n{res}\n```\n{end}"
if start in text:
    text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
else:
    text += "\n" + block + "\n"
doc.write_text(text)
