"""Build step of the double's image (Dockerfile): drop the standard library's parts that neither
the agents nor the calicoctl script import, then prove the agents still import. Not shipped."""

import importlib
import pkgutil
import shutil
import sys
import sysconfig
from pathlib import Path

LIB = Path(sysconfig.get_paths()["stdlib"])
PACKAGES = ("asyncio", "multiprocessing", "unittest", "wsgiref", "xml", "xmlrpc", "sqlite3", "venv", "tomllib",
            "curses", "dbm", "ensurepip", "idlelib", "tkinter", "turtledemo", "lib2to3", "zoneinfo")
# Unicode, ASCII and Latin-1 in all their forms, IDNA for host names, and the byte codecs.
CODECS = {"__init__", "aliases", "ascii", "base64_codec", "charmap", "hex_codec", "idna", "latin_1", "punycode",
          "raw_unicode_escape", "undefined", "unicode_escape", "utf_16", "utf_16_be", "utf_16_le", "utf_32",
          "utf_32_be", "utf_32_le", "utf_7", "utf_8", "utf_8_sig"}
EXTENSIONS = ("_asyncio", "_ctypes_test", "_curses", "_curses_panel", "_dbm", "_multiprocessing", "_posixshmem",
              "_sqlite3", "_test", "_xx", "xxlimited", "audioop", "nis", "ossaudiodev", "readline", "_lsprof",
              "_zoneinfo", "_codecs_", "_multibytecodec")
# What the calicoctl script imports (calico_double/calicoctl), besides the agents' own.
CALICOCTL = ("base64", "ipaddress", "json", "os", "re", "socket", "ssl", "sys", "unicodedata", "urllib.error",
             "urllib.parse", "urllib.request", "pathlib", "typing")


def main() -> int:
    before = sum(1 for p in LIB.rglob("*") if p.is_file())
    for name in PACKAGES:
        shutil.rmtree(LIB / name, ignore_errors=True)
    (LIB / "turtle.py").unlink(missing_ok=True)
    for path in (LIB / "encodings").rglob("*.py*"):
        if path.name.split(".")[0] not in CODECS:
            path.unlink()
    for path in (LIB / "lib-dynload").iterdir():
        if path.name.startswith(EXTENSIONS):
            path.unlink()
    for cached in LIB.glob("__pycache__/turtle.*"):
        cached.unlink()
    after = sum(1 for p in LIB.rglob("*") if p.is_file())
    import calico_double.agent as agent
    modules = [f"calico_double.agent.{m.name}" for m in pkgutil.iter_modules(agent.__path__)
               if not m.name.startswith("__")]  # __main__ would start the agent
    for name in (*modules, *CALICOCTL, "encodings.idna", "http.server", "logging.handlers"):
        importlib.import_module(name)
    print(f"standard library: {before} files, {after} kept; {len(modules)} agent modules import", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
