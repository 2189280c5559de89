"""What the two runs' provenance says about comparing them: same machine and thread count? same versions?"""
from __future__ import annotations

# Dependency versions: the provenance key `packages` (name -> version) and, in runs older than it, only these
# top-level keys (still written beside it; they win where both are present, so old and new runs compare alike).
VERSION_KEYS = ("torch", "onnx", "onnxruntime")
SOFTWARE_KEYS = ("python", "torch", "onnx", "onnxruntime", "git_sha")
# boot_id: cloud VMs share a hostname ("vm") and a CPU string; two of them, or one VM before and after a reboot,
# are not the same machine for timing, and only the kernel's boot id tells them apart.
MACHINE_KEYS = ("hostname", "boot_id", "cpu", "cpu_count", "gpu")


def _value(provenance: dict, record: dict | None, key: str):
    # A record that says where it ran (a job of a multi-machine run) overrides the run-level provenance.
    if record is not None:
        if key == "hostname" and record.get("host"):
            return record["host"]
        if key in ("threads", "device") and record.get(key) not in (None, ""):
            return record[key]
    value = provenance.get(key)
    return None if value == "" else value


def versions(provenance: dict) -> dict[str, str]:
    """The dependency versions a run recorded: `packages` and the top-level torch/onnx/onnxruntime."""
    packages = provenance.get("packages")
    found = {str(k): str(v) for k, v in packages.items() if v not in (None, "")} if isinstance(packages, dict) else {}
    found.update({k: str(provenance[k]) for k in VERSION_KEYS if provenance.get(k) not in (None, "")})
    return found


def version_difference(base: dict, new: dict) -> str:
    """`torch 2.14.1 -> 2.15.0; onnxscript 0.5.1 -> 0.5.3` for each dependency whose version differs between the
    runs, then those one run did not record (`not recorded in BASE: fvcore 0.1.5`); "" if none differ."""
    a, b = versions(base), versions(new)
    names = [k for k in VERSION_KEYS if k in a or k in b] + sorted((a.keys() | b.keys()) - set(VERSION_KEYS))
    diffs = [f"{k} {a[k]} -> {b[k]}" for k in names if k in a and k in b and a[k] != b[k]]
    for side, here, there in (("BASE", a, b), ("NEW", b, a)):
        absent = [f"{k} {there[k]}" for k in names if k in there and k not in here]
        if absent:
            diffs.append(f"not recorded in {side}: " + ", ".join(absent))
    return "; ".join(diffs)


def machine_difference(base: dict, new: dict, record_a: dict | None = None, record_b: dict | None = None) -> list[str]:
    """What differs between where the two records ran: host, boot, CPU, core count, GPU, device, threads ([] = same)."""
    diffs = []
    for key in MACHINE_KEYS + ("device", "threads"):
        a, b = _value(base, record_a, key), _value(new, record_b, key)
        if a is None and b is None:
            continue
        if a is None or b is None or str(a) != str(b):
            diffs.append(f"{key} {a} vs {b}")
    return diffs


def software_difference(base: dict, new: dict, *, identical_code: bool = False) -> list[str]:
    """What differs between the runs' software (python, torch, onnx, onnxruntime, the other `packages` both
    recorded, git commit); a commit with uncommitted changes ('-dirty') never counts as the same code.
    `identical_code`: the caller knows both sides ran the same source tree (an A/B run), so the commit is not
    asked; everything else still is."""
    diffs = []
    for key in SOFTWARE_KEYS:
        if key == "git_sha" and identical_code:
            continue
        a, b = base.get(key), new.get(key)
        unclean = [v for v in (a, b) if key == "git_sha" and (not v or "dirty" in str(v) or v == "unknown")]
        if unclean:
            diffs.append(f"git_sha {unclean[0]} (not a clean commit)")
        elif a != b:
            diffs.append(f"{key} {a} vs {b}")
    # Old runs recorded no `packages`: a package only one side recorded is not held against reproducing.
    a, b = versions(base), versions(new)
    diffs += [f"{k} {a[k]} vs {b[k]}" for k in sorted(a.keys() & b.keys()) if k not in SOFTWARE_KEYS and a[k] != b[k]]
    return diffs


def describe(provenance: dict) -> str:
    """One line: host, CPU, threads, device, versions, commit and time of a run."""
    parts = [f"{provenance.get('hostname') or '?'}", f"{provenance.get('cpu') or '?'}"]
    if provenance.get("threads") is not None:
        parts.append(f"{provenance['threads']} thread(s)")
    if provenance.get("device"):
        parts.append(str(provenance["device"]))
    parts += [f"{k} {provenance[k]}" for k in ("torch", "onnxruntime") if provenance.get(k)]
    if provenance.get("git_sha"):
        parts.append(f"git {str(provenance['git_sha'])[:12]}")
    if provenance.get("timestamp"):
        parts.append(str(provenance["timestamp"]))
    return ", ".join(parts)


def cpu_share(records: list[dict]) -> float | None:
    """The share of the timed wall time that the process spent on its cores, over every latency measurement
    that kept CPU times: 1.0 on an idle machine; 0.2 when other processes held the cores 80% of the time."""
    cpu = wall = 0.0
    for record in records:
        c, w = record.get("latency_cpu_samples_ms"), record.get("latency_samples_ms")
        if isinstance(c, list) and isinstance(w, list) and c and len(c) == len(w):
            cpu += sum(v for v in c if v is not None)
            wall += sum(v for v in w if v is not None) * max(1, int(record.get("threads") or 1))
    return cpu / wall if wall > 0 else None
