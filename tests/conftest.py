"""Fixtures shared by several test modules."""
import pytest


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory):
    """A finished `minirlhf run --fast` folder (~30 s), read by the benchmarks' and DPO's tests; not modified."""
    from minirlhf.run import run
    folder = tmp_path_factory.mktemp("fast") / "run"
    run(folder, fast=True)
    return folder
