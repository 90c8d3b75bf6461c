"""The test suite's own guards: a subprocess that times out in a test shows the last lines it printed."""

import textwrap

pytest_plugins = ["pytester"]


def test_a_subprocess_timeout_shows_the_last_lines_of_its_output(pytester):
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(test_child=textwrap.dedent("""
        import subprocess, sys

        def test_hangs():
            child = "import sys, time\\nfor i in range(40): print('child line', i)\\n"
            child += "print('last words', file=sys.stderr, flush=True)\\ntime.sleep(60)\\n"
            subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=3)
    """))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--tb=line")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "subprocess timed out after 3 s" in out
    # the last 30 lines of its stdout (lines 10 to 39), and its stderr
    assert "--- last stdout ---\nchild line 10\n" in out and "child line 39\n--- last stderr ---" in out
    assert "child line 9\n" not in out
    assert "--- last stderr ---\nlast words" in out
