"""docs/openapi.yaml documents every route the daemon registers, and nothing else."""
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PKIAAS_BUILD_DIR", REPO / "build"))


def _normalise(path):
    return re.sub(r"\{[^}]*\}", "{}", path)


def _documented():
    """(METHOD, path) pairs from the OpenAPI file, read without a YAML library:
    paths are two-space-indented keys under `paths:`, methods four-space keys."""
    ops, in_paths, current = set(), False, None
    for line in (REPO / "docs" / "openapi.yaml").read_text().splitlines():
        if line.startswith("paths:"):
            in_paths = True
            continue
        if not in_paths:
            continue
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            current = _normalise(m.group(1))
            continue
        m = re.match(r"^    (get|post|put|delete|patch|head):\s*$", line)
        if m and current:
            ops.add((m.group(1).upper(), current))
    return ops


def test_every_route_is_documented():
    out = subprocess.run([str(BUILD / "pkiaasd"), "routes"], check=True, capture_output=True, text=True).stdout
    registered = {tuple(l.split(" ", 1)) for l in out.strip().splitlines()}
    registered = {(m, _normalise(p)) for m, p in registered}
    documented = _documented()
    assert registered, "pkiaasd routes printed nothing"
    missing = registered - documented
    extra = documented - registered
    assert not missing, f"routes missing from docs/openapi.yaml: {sorted(missing)}"
    assert not extra, f"docs/openapi.yaml documents routes the daemon does not serve: {sorted(extra)}"
