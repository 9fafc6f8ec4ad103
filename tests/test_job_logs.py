"""Why a sample failed, by its jobs' logs: the first job of this run to end in a traceback."""

import os

from virnucpro.runtime.job_logs import sample_failure

TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1\n'


def log(logs, path, text, written):
    path = logs / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (written, written))


def test_the_first_job_of_this_run_to_fail_is_named_with_its_error(tmp_path):
    log(tmp_path, "prepare_sample/s.log", "INFO done\n", 100)
    log(tmp_path, "embed_shard/s/shard_0001.log", TRACEBACK + "OSError: later\n", 130)
    log(tmp_path, "embed_shard/s/shard_0000.log", TRACEBACK + "a.b.DamagedFile: x is cut\n", 120)
    log(tmp_path, "aggregate_sample/s.log", TRACEBACK + "ValueError: of a run before\n", 50)
    log(tmp_path, "prepare_sample/s2.log", TRACEBACK + "ValueError: another sample\n", 140)
    assert sample_failure(tmp_path, "s", since=100) == "embed_shard: DamagedFile: x is cut"
    assert sample_failure(tmp_path, "s", since=200) is None
    assert sample_failure(tmp_path, "s3", since=0) is None
