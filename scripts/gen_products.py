#!/usr/bin/env python3
"""Generates the built-in KMS product table (C++) from data/products.csv.

Usage: gen_products.py IN.csv OUT.cpp

The CSV is validated strictly; any problem is reported as "IN.csv:LINE: message" on stderr and the
script exits with status 1 without touching OUT.cpp. Standard library only.
"""

import csv
import os
import re
import sys
import tempfile

COLUMNS = ["kind", "guid", "name", "app_guid", "kms_guid", "n_policy", "protocol", "epid_csvlk", "gvlk", "source"]
KINDS = ("app", "kms", "sku")
# Keep in sync with csvlk_families() in core/src/epid.cpp.
CSVLK_FAMILIES = {"Windows", "Office2010", "Office2013", "Office2016", "WinChinaGov", "Office2019", "Office2021",
                  "Office2024"}
SOURCES = {"vlmcsd", "py-kms", "both"}
PROTOCOLS = {4, 5, 6}
MAX_N_POLICY = 1000  # vlmcsd refuses larger values
GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
GVLK_RE = re.compile(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){4}\Z")
INT_RE = re.compile(r"(0|[1-9][0-9]*)\Z")


class CsvError(Exception):
    def __init__(self, line, message):
        super().__init__(message)
        self.line = line
        self.message = message


def cxx_string(text):
    """A C++ string literal for text (UTF-8 bytes; non-printable bytes and '?' as octal escapes)."""
    out = ['"']
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F and ch != "?":  # '?' escaped so no trigraph can ever form
            out.append(ch)
        else:
            out.append("\\%03o" % byte)
    out.append('"')
    return "".join(out)


def read_rows(path):
    """Yields (line_number, row) for every record; line_number is where the record starts."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, strict=True)
        next_line = 1
        try:
            for row in reader:
                yield next_line, row
                next_line = reader.line_num + 1
        except csv.Error as e:
            raise CsvError(reader.line_num, "malformed CSV: %s" % e) from None


def parse_int(line, column, text, allowed=None, maximum=None):
    if not INT_RE.match(text):
        raise CsvError(line, "%s: %r is not a decimal integer" % (column, text))
    value = int(text)
    if allowed is not None and value not in allowed:
        raise CsvError(line, "%s: %d is not one of %s" % (column, value, sorted(allowed)))
    if maximum is not None and value > maximum:
        raise CsvError(line, "%s: %d is larger than %d" % (column, value, maximum))
    return value


def validate(path):
    rows = []
    seen = {}  # guid -> line
    records = read_rows(path)
    try:
        line, header = next(records)
    except StopIteration:
        raise CsvError(1, "empty file, expected the header row") from None
    if header != COLUMNS:
        raise CsvError(line, "header must be exactly %s, got %s" % (",".join(COLUMNS), ",".join(header)))
    for line, fields in records:
        if fields == []:
            raise CsvError(line, "empty line")
        if len(fields) != len(COLUMNS):
            raise CsvError(line, "expected %d fields, got %d" % (len(COLUMNS), len(fields)))
        r = dict(zip(COLUMNS, fields))
        for column, value in r.items():
            if value != value.strip():
                raise CsvError(line, "%s: leading or trailing white space in %r" % (column, value))
        kind = r["kind"]
        if kind not in KINDS:
            raise CsvError(line, "unknown kind %r (expected app, kms or sku)" % kind)
        for column in ("guid", "app_guid", "kms_guid"):
            if r[column] and not GUID_RE.match(r[column]):
                raise CsvError(line, "%s: malformed GUID %r (expected lower-case 8-4-4-4-12 hex)" % (column, r[column]))
        guid = r["guid"]
        if not guid:
            raise CsvError(line, "guid: missing")
        if guid in seen:
            raise CsvError(line, "duplicate GUID %s (first on line %d)" % (guid, seen[guid]))
        seen[guid] = line
        if not r["name"]:
            raise CsvError(line, "name: missing")
        if r["source"] not in SOURCES:
            raise CsvError(line, "source: %r is not one of %s" % (r["source"], sorted(SOURCES)))
        if r["gvlk"] and not GVLK_RE.match(r["gvlk"]):
            raise CsvError(line, "gvlk: malformed key %r" % r["gvlk"])
        if kind == "app":
            for column in ("app_guid", "kms_guid", "n_policy", "protocol", "epid_csvlk", "gvlk"):
                if r[column]:
                    raise CsvError(line, "%s: must be empty on an app row" % column)
            n_policy = protocol = 0
        else:
            for column in ("app_guid", "n_policy", "protocol", "epid_csvlk"):
                if not r[column]:
                    raise CsvError(line, "%s: missing on a %s row" % (column, kind))
            if kind == "kms":
                for column in ("kms_guid", "gvlk"):
                    if r[column]:
                        raise CsvError(line, "%s: must be empty on a kms row" % column)
            n_policy = parse_int(line, "n_policy", r["n_policy"], maximum=MAX_N_POLICY)
            protocol = parse_int(line, "protocol", r["protocol"], allowed=PROTOCOLS)
            if r["epid_csvlk"] not in CSVLK_FAMILIES:
                raise CsvError(line, "epid_csvlk: unknown CSVLK family %r" % r["epid_csvlk"])
        rows.append((line, r, n_policy, protocol))

    # References must point at rows of the right kind (checked after reading, so order does not matter).
    kinds = {r["guid"]: r["kind"] for _, r, _, _ in rows}
    for line, r, _, _ in rows:
        for column, want, article in (("app_guid", "app", "an"), ("kms_guid", "kms", "a")):
            ref = r[column]
            if ref and kinds.get(ref) != want:
                raise CsvError(line, "%s: %s is not the GUID of %s %s row" % (column, ref, article, want))
    return rows


def render(in_path, rows):
    out = [
        "// Generated by scripts/gen_products.py from %s. Do not edit; edit the CSV and rebuild." %
        os.path.basename(in_path),
        "#include \"kmscope/products.hpp\"",
        "",
        "namespace kmscope::detail {",
        "",
        "extern const BuiltinProductRow kBuiltinProducts[] = {",
    ]
    for line, r, n_policy, protocol in rows:
        fields = [cxx_string(r["kind"]), cxx_string(r["guid"]), cxx_string(r["name"]), cxx_string(r["app_guid"]),
                  cxx_string(r["kms_guid"]), str(n_policy), str(protocol), cxx_string(r["epid_csvlk"]),
                  cxx_string(r["gvlk"])]
        out.append("    {%s},  // line %d" % (", ".join(fields), line))
    out += [
        "};",
        "",
        "extern const std::size_t kBuiltinProductCount = %d;" % len(rows),
        "",
        "}  // namespace kmscope::detail",
        "",
    ]
    return "\n".join(out)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: gen_products.py IN.csv OUT.cpp\n")
        return 2
    in_path, out_path = argv[1], argv[2]
    try:
        rows = validate(in_path)
    except CsvError as e:
        sys.stderr.write("%s:%d: %s\n" % (in_path, e.line, e.message))
        return 1
    except (OSError, UnicodeDecodeError) as e:
        sys.stderr.write("%s: %s\n" % (in_path, e))
        return 1
    if not rows:
        sys.stderr.write("%s:1: no product rows\n" % in_path)
        return 1
    text = render(in_path, rows)
    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    # Write atomically so an interrupted run never leaves a half-written source file behind.
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".gen_products.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, out_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
