"""bench/provenance.py: the versions of the packages that can move a measured field, under provenance["packages"]."""
import importlib.metadata
import json

import torch

from bench import provenance

EXPECTED = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "segmentation-models-pytorch", "fvcore",
            "numpy", "scipy", "scikit-learn")


def test_collect_records_the_installed_version_of_every_measured_package():
    prov = provenance.collect(torch.device("cpu"), threads=1, seed=0, argv=["bench", "run"])
    packages = prov["packages"]
    for name in EXPECTED:  # all are dependencies of defectbench, so all are installed here
        assert packages[name] == importlib.metadata.version(name), name
    assert set(packages) <= set(provenance.MEASURED_PACKAGES)
    # the earlier top-level keys stay as they were (torch.__version__ keeps its local tag, e.g. +cu130)
    assert prov["torch"] == torch.__version__
    for key in ("onnx", "onnxruntime", "python", "git_sha", "seed", "command", "threads", "device"):
        assert key in prov, key
    assert json.loads(json.dumps(prov))["packages"] == packages  # it goes into results.json as it is


def test_a_missing_package_is_left_out():
    versions = provenance.package_versions(("numpy", "defectbench-no-such-distribution"))
    assert versions == {"numpy": importlib.metadata.version("numpy")}
    assert provenance.package_versions(()) == {}
