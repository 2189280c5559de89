"""Accuracy: judged only between records evaluated on the same data (the same data fingerprint).

- image AUROC: DeLong's test for two correlated ROC curves on the per-image scores of both records
  (`bench.stats.delong_test`), when both kept their scores and labels;
- the other metrics (and image AUROC without scores): against the records' 95% bootstrap intervals, a change
  counting as significant when the two intervals do not overlap;
- recall at a false-alarm rate (image_recall_at_fpr_1pct, ..., where the record has it): with both records' per-image
  scores of the same images, a paired permutation test on the same test images (bench.ranking.paired_permutation_p:
  the two sides' per-image ranks swapped by a fair coin; a paired bootstrap is too liberal at 1%, see
  bench/ranking.py); otherwise by its intervals like the other metrics;
- a drop is a regression when it is significant AND larger than the tolerance (--accuracy-tol);
- a metric that one record does not carry at all (BASE recorded before it existed) is listed `not comparable`,
  "not in BASE", and does not fail;
- identical settings (settings_hash), an epoch budget on both sides, and the same machine, versions and
  commit (or, in an A/B run of one source tree, `identical_code`) must give identical numbers (training is
  bit-reproducible): any difference is non-determinism;
- another or an unknown data fingerprint makes every metric `not comparable`, and that fails unless
  --allow-data-change: a gate that cannot judge accuracy must not pass it.
"""
from __future__ import annotations

import math

from bench.compare.findings import (DATA_CHANGE, IMPROVEMENT, NON_DETERMINISTIC, NOT_COMPARABLE, NOT_JUDGED, REGRESSION,
                                    REPRODUCED, SAME, WITHIN_NOISE, Finding, option_note)

METRICS = ("image_auroc", "image_ap", "pixel_auroc", "aupro", "image_f1_max", "pixel_ap")
RECALL_AT_FPR = "image_recall_at_fpr"
PAIRED_RESAMPLES = 2000  # as bench.ranking: p-values down to 0.001, for --alpha 0.01
PAIRED_SEED = 0


def recall_metrics(*records: dict) -> list[str]:
    """The recall-at-false-alarm-rate columns (bench.operating_points) any of `records` carries, by target."""
    from bench.schema import operating_point_parts

    found = {key: target_rate(parts[1]) for record in records for key in record
             if (parts := operating_point_parts(key)) and parts[0] == RECALL_AT_FPR and parts[2] == ""}
    return sorted(found, key=found.get)


def target_rate(suffix: str) -> float:
    """'1pct' -> 0.01, '0p5pct' -> 0.005 (bench.operating_points.rate_suffix, read back)."""
    return float(suffix[: -len("pct")].replace("p", ".")) / 100.0


def _number(value) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _undefined_reason(record: dict, metric: str) -> str:
    text = str(record.get("undefined_metrics") or "")
    for part in text.split(";"):
        if metric in part:
            return part.strip()
    return "no value"


def _decide(job: str, metric: str, a: float, b: float, significant: bool, p_value: float | None, tol: float,
            how: str) -> Finding:
    change = b - a
    if significant and change < -tol:
        return Finding(job, "accuracy", metric, a, b, change, p_value, REGRESSION, True, how)
    if significant and change > tol:
        return Finding(job, "accuracy", metric, a, b, change, p_value, IMPROVEMENT, False, how)
    why = "not significant" if not significant else f"significant, but within --accuracy-tol {tol:g}"
    return Finding(job, "accuracy", metric, a, b, change, p_value, WITHIN_NOISE, False, f"{how}: {why}")


def _paired_scores(base: dict, new: dict):
    """(labels, scores_a, scores_b) when both records kept per-image scores of the same labelled images."""
    la, lb, sa, sb = base.get("labels"), new.get("labels"), base.get("scores"), new.get("scores")
    if not (isinstance(la, list) and isinstance(sa, list) and isinstance(lb, list) and isinstance(sb, list)):
        return None
    if not la or la != lb or len(sa) != len(la) or len(sb) != len(lb):
        return None
    return la, sa, sb


def _by_delong(job: str, a: float, b: float, paired, alpha: float, tol: float) -> Finding:
    from bench import stats

    labels, scores_a, scores_b = paired
    try:
        result = stats.delong_test(labels, scores_a, scores_b)
    except ValueError as exc:  # e.g. fewer than two images of a class: no test, say why
        return Finding(job, "accuracy", "image_auroc", a, b, b - a, None, NOT_JUDGED, False, f"DeLong: {exc}")
    p = result.p_value
    if p is None or (isinstance(p, float) and math.isnan(p)):
        # identical score rankings: the difference has no variance and is exactly zero
        return Finding(job, "accuracy", "image_auroc", a, b, b - a, None, WITHIN_NOISE, False,
                       "DeLong: identical rankings")
    return _decide(job, "image_auroc", a, b, p < alpha, p, tol, f"DeLong paired test, p < {alpha:g} counts")


def _by_paired_permutation(job: str, metric: str, a: float, b: float, paired, alpha: float, tol: float) -> Finding:
    """Recall at a false-alarm rate, both records' scores of the same test images."""
    import numpy as np

    from bench.ranking import paired_permutation_p

    labels, scores_a, scores_b = (np.asarray(v) for v in paired)
    target = target_rate(metric.rsplit("_", 1)[1])
    p = paired_permutation_p(labels, scores_a, scores_b, target, PAIRED_RESAMPLES, np.random.default_rng(PAIRED_SEED))
    return _decide(job, metric, a, b, p < alpha, p, tol,
                   f"paired permutation test on the same test images ({PAIRED_RESAMPLES} swaps), p < {alpha:g} counts")


def _by_intervals(job: str, metric: str, a: float, b: float, base: dict, new: dict, tol: float) -> Finding:
    bounds = [_number(r.get(f"{metric}_ci_{side}")) for r in (base, new) for side in ("low", "high")]
    if any(v is None for v in bounds):
        return Finding(job, "accuracy", metric, a, b, b - a, None, NOT_JUDGED, False,
                       "no interval on one side: listed, not judged")
    low_a, high_a, low_b, high_b = bounds
    apart = high_b < low_a or low_b > high_a
    return _decide(job, metric, a, b, apart, None, tol,
                   f"95% intervals [{low_a:.3f}, {high_a:.3f}] vs [{low_b:.3f}, {high_b:.3f}]"
                   + (" do not overlap" if apart else " overlap"))


def reproducibility_conditions(base: dict, new: dict, machine_diffs: list[str], software_diffs: list[str]) -> str | None:
    """None when the two records must be identical (same settings hash, epoch budget on both, same machine,
    versions and commit: `software_diffs` leaves the commit out for an A/B run of identical code); else why the
    rule does not apply."""
    ha, hb = base.get("settings_hash"), new.get("settings_hash")
    if not ha or not hb or ha != hb:
        return "settings differ" if ha and hb else "no settings hash"
    if base.get("stopped_by") != "epochs" or new.get("stopped_by") != "epochs":
        return "not an epoch budget on both sides (time budgets depend on the machine)"
    if machine_diffs:
        return "different machine: " + "; ".join(machine_diffs)
    if software_diffs:
        return "different software: " + "; ".join(software_diffs)
    return None


def _determinism(job: str, base: dict, new: dict) -> Finding:
    # a metric one side does not carry at all (recorded by an older defectbench) is no evidence either way
    differ = [m for m in (*METRICS, *recall_metrics(base, new)) if m in base and m in new
              and _number(base.get(m)) != _number(new.get(m))]
    if base.get("scores") != new.get("scores"):
        differ.append("scores")
    if differ:
        return Finding(job, "determinism", ", ".join(differ), None, None, None, None, NON_DETERMINISTIC, True,
                       "same settings, epoch budget, machine, versions and code, yet different numbers")
    return Finding(job, "determinism", "all metrics", None, None, None, None, REPRODUCED, False,
                   "same settings, epoch budget, machine, versions and code: identical numbers")


def compare_accuracy(job: str, base: dict, new: dict, *, alpha: float, tol: float,
                     not_reproducible_because: str | None, allow_data_change: bool = False) -> list[Finding]:
    present = [m for m in (*METRICS, *recall_metrics(base, new))
               if _number(base.get(m)) is not None or _number(new.get(m)) is not None]
    if not present:
        return []
    fa, fb = base.get("data_fingerprint"), new.get("data_fingerprint")
    if not fa or not fb or fa != fb:
        reason = ("no data fingerprint in " + " and ".join(s for s, f in (("BASE", fa), ("NEW", fb)) if not f)
                  if not fa or not fb else f"evaluated on different data ({fa} vs {fb})")
        reason += "; " + option_note("--allow-data-change", allow_data_change)
        return [Finding(job, "accuracy", m, _number(base.get(m)), _number(new.get(m)), None, None, NOT_COMPARABLE,
                        not allow_data_change, reason, DATA_CHANGE) for m in present]
    found = []
    if not_reproducible_because is None:
        found.append(_determinism(job, base, new))
    paired = _paired_scores(base, new)
    for metric in present:
        a, b = _number(base.get(metric)), _number(new.get(metric))
        if a is None or b is None:
            side, record = ("BASE", base) if a is None else ("NEW", new)
            why = (f"not in {side} (recorded without this metric): listed, not judged" if metric not in record
                   else f"undefined in {side}: {_undefined_reason(record, metric)}")
            found.append(Finding(job, "accuracy", metric, a, b, None, None, NOT_COMPARABLE, False, why))
        elif a == b and (metric != "image_auroc" or paired is None or paired[1] == paired[2]):
            found.append(Finding(job, "accuracy", metric, a, b, 0.0, None, SAME, False))  # nothing to test
        elif metric == "image_auroc" and paired is not None:
            found.append(_by_delong(job, a, b, paired, alpha, tol))
        elif metric.startswith(RECALL_AT_FPR) and paired is not None:
            found.append(_by_paired_permutation(job, metric, a, b, paired, alpha, tol))
        else:
            found.append(_by_intervals(job, metric, a, b, base, new, tol))
    return found
