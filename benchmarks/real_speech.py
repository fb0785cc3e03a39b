"""Real human speech with reference transcripts, from Debian packages (no model hub needed).

Asterisk's core English prompts (asterisk-core-sounds-en-wav: one female voice, Allison Smith,
8 kHz telephone recordings of ~560 prompts), with the transcripts Debian ships in
asterisk-core-sounds-en (core-sounds-en.txt). The packages are downloaded with `apt-get download`
and unpacked here with `dpkg -x`; nothing is installed system-wide.

    python -m benchmarks.real_speech artifacts/real-speech     # → artifacts/real-speech/manifest.jsonl
"""

from __future__ import annotations

import argparse
import glob
import gzip
import os
import re
import subprocess
import sys

from adapters.data.manifest import write_manifest

PACKAGES = ["asterisk-core-sounds-en-wav", "asterisk-core-sounds-en"]


def _transcripts(path: str) -> dict[str, str]:
    out = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            if not sep or line.startswith(";"):
                continue
            text = text.strip()
            # Fragments ("...to mute yourself.") and bracketed stage directions are not clean references.
            if not text or "..." in text or "[" in text or "/" in name:
                continue
            out[name.strip()] = re.sub(r"\s+", " ", text)
    return out


def fetch(output: str) -> str:
    """Download, unpack and index the recordings; returns the manifest path (idempotent)."""
    manifest = os.path.join(output, "manifest.jsonl")
    if os.path.exists(manifest):
        return manifest
    debs = os.path.join(output, "debs")
    root = os.path.join(output, "root")
    os.makedirs(debs, exist_ok=True)
    if not glob.glob(os.path.join(debs, "*.deb")):
        proc = subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"apt-get download {' '.join(PACKAGES)} failed: {proc.stderr.strip()}")
    for deb in glob.glob(os.path.join(debs, "*.deb")):
        subprocess.run(["dpkg", "-x", deb, root], check=True)
    (doc,) = glob.glob(os.path.join(root, "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"))
    texts = _transcripts(doc)
    (voice,) = glob.glob(os.path.join(root, "usr/share/asterisk/sounds/en*"))
    rows = []
    for name, text in sorted(texts.items()):
        wav = os.path.join(voice, name + ".wav")
        if os.path.exists(wav):
            rows.append({"audio": os.path.relpath(wav, output), "text": text, "source": "asterisk-core-sounds-en (Allison Smith)"})
    write_manifest(manifest, rows)
    return manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output", nargs="?", default="artifacts/real-speech")
    a = p.parse_args()
    try:
        path = fetch(a.output)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        sys.exit(f"error: {e}")
    n = sum(1 for _ in open(path))
    print(f"{n} real recordings with transcripts: {path}")


if __name__ == "__main__":
    main()
