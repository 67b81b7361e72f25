"""Keep secrets out of logs and reports: redact private key blocks, and scan a folder for
private key material (PEM/OpenSSH blocks, the run's own key bodies, well-known token forms).

A finding names the file, the line and the kind of secret, never the secret itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# "-----BEGIN RSA PRIVATE KEY-----", "... EC PRIVATE KEY", "... OPENSSH PRIVATE KEY",
# "... ENCRYPTED PRIVATE KEY", "... PGP PRIVATE KEY BLOCK", plain "PRIVATE KEY".
PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----")
PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)",
    re.DOTALL)
REDACTED = "[private key redacted by calicolab]"
# Token shapes that are never legitimate in a test report.
TOKEN_PATTERNS = {
    "GitHub token": re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "bearer token": re.compile(r"\bAuthorization:\s*Bearer\s+[A-Za-z0-9._~+/=-]{20,}", re.IGNORECASE),
}
MAX_SCAN_BYTES = 20 * 1024 * 1024  # per file: reports are text, a huge blob is not ours
MIN_BODY_LINE = 40  # shorter base64 lines could match by chance


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def redact(text: str) -> str:
    """Replace every private key block (even a truncated one) by a marker."""
    return PRIVATE_KEY_BLOCK.sub(REDACTED, text)


def key_bodies(folder: Path) -> set[str]:
    """The base64 lines of the private keys a run folder holds (Vagrant's per-node keys,
    TLS keys), so a key quoted without its BEGIN line is still found."""
    bodies: set[str] = set()
    if not folder.is_dir():
        return bodies
    for path in _files(folder):
        if path.stat().st_size > 64 * 1024:
            continue
        text = _read(path)
        if text is None:
            continue
        for block in PRIVATE_KEY_BLOCK.finditer(text):
            for line in block.group(0).splitlines()[1:-1]:
                line = line.strip()
                if len(line) >= MIN_BODY_LINE and ":" not in line:  # skip PEM headers
                    bodies.add(line)
    return bodies


def scan_text(text: str, bodies: Iterable[str] = ()) -> list[tuple[int, str]]:
    """(line number, kind) of every secret in text."""
    found: list[tuple[int, str]] = []
    body_set = set(bodies)
    for number, line in enumerate(text.splitlines(), start=1):
        if PRIVATE_KEY_BEGIN.search(line):
            found.append((number, "private key block"))
            continue
        if body_set and any(body in line for body in body_set):
            found.append((number, "a line of one of this run's private keys"))
            continue
        for kind, pattern in TOKEN_PATTERNS.items():
            if pattern.search(line):
                found.append((number, kind))
                break
    return found


def scan(folders: Iterable[Path], bodies: Iterable[str] = (), only: str = "*") -> list[Finding]:
    """Scan every readable file under the folders (glob `only`) for secrets."""
    body_set = set(bodies)
    findings: list[Finding] = []
    for folder in folders:
        if not folder.exists():
            continue
        for path in _files(folder, only):
            text = _read(path)
            if text is not None:
                findings += [Finding(path, n, kind) for n, kind in scan_text(text, body_set)]
    return findings


def _files(folder: Path, pattern: str = "*") -> Iterable[Path]:
    if folder.is_file():
        yield folder
        return
    for path in sorted(folder.rglob(pattern)):
        if path.is_file() and not path.is_symlink():
            yield path


def _read(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_SCAN_BYTES:
            return None
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None
