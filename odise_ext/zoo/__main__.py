"""``python -m odise_ext.zoo list`` (the table, and what is cached) / ``fetch NAME...`` (download,
verify and convert now, e.g. on a login node before a multi-GPU job)."""
import argparse
import os
import sys

from .catalog import catalog
from .resolve import ZooError, cache_paths, entry_urls, resolve, zoo_cache_dir


def _state(entry) -> str:
    original, converted = cache_paths(entry)
    if os.path.isfile(converted):
        return "converted"
    if os.path.isfile(original):
        return "downloaded"
    return "partial" if os.path.isfile(original + ".part") else "-"


def list_entries(out=None) -> None:
    out = out or sys.stdout
    print(f"cache: {zoo_cache_dir()}", file=out)
    rows = [("name", "cached", "format", "config", "sha256", "url")]
    for uri, e in sorted(catalog().items()):
        urls = entry_urls(e)
        rows.append((uri, _state(e), e.release_format, e.config, (e.sha256 or "-")[:12], urls[0] if urls else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1], file=out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m odise_ext.zoo", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the model zoo and what is cached")
    fetch = sub.add_parser("fetch", help="download, verify and convert entries now")
    fetch.add_argument("names", nargs="+", help="e.g. odise://label_coco_50e")
    args = p.parse_args(argv)
    if args.cmd == "list":
        list_entries()
        return 0
    for name in args.names:
        try:
            print(f"{name}: {resolve(name)}")
        except ZooError as e:
            print(str(e), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
