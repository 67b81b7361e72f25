import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# A test fails when a FakeNode it made was asked a command no rule answers, even if the code
# under test swallowed the UnexpectedCommand (hooks defined in tests/fakes.py).
from fakes import pytest_runtest_call, pytest_runtest_setup  # noqa: E402, F401
