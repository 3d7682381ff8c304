"""Start-up of agent-facing commands: typer's pydantic adapters stay unimported, the cyclic
collector is off only for one-shot commands, and plain parameters convert and fail as before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLE_BOARDS, run_ifcoord

PROBE = """
import gc, io, sys, contextlib
from ifcoord.__main__ import main
from ifcoord.cli import entry
seen = []
inner = entry._execute
def spy(*args):
    seen.append(gc.isenabled())  # the collector while the command runs
    return inner(*args)
entry._execute = spy
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
young = gc.get_count()[0]  # objects the collector would walk on its next pass
print(code, 'typer._adapters' in sys.modules, seen[0], gc.isenabled(), young < 1000)
"""


def probe(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_board_runs_without_typer_pydantic_adapters_and_without_the_cyclic_collector() -> None:
    # off while the command runs, back on after it (in-process callers keep their collector),
    # and what the command built is not left for the collector's next pass to walk (at 5,000
    # tasks that pass took 33 ms on the way out)
    assert probe("board", "--dir", str(EXAMPLE_BOARDS), "--json") == ["0", "False", "False", "True", "True"]


def test_a_command_that_loops_keeps_the_cyclic_collector() -> None:
    code, _, collector, _, _ = probe("poll", "--help")
    assert (code, collector) == ("0", "True")


def test_a_bad_integer_is_a_usage_error_naming_the_parameter(tmp_path: Path) -> None:
    proc = run_ifcoord("progress", "P0.1", "half", "-s", "alice", cwd=tmp_path)
    assert proc.returncode == 2
    assert "invalid value for 'percent': input should be a valid integer" in proc.stderr.lower()


def test_plain_parameters_convert_like_typer() -> None:
    from typer._coercion import resolve_type_descriptor
    from typer.models import OptionInfo

    from ifcoord.cli.entry import _plain_converter

    def convert(annotation: type, value: object) -> object:
        converter = _plain_converter(resolve_type_descriptor(annotation, OptionInfo()))
        assert converter is not None
        return converter._coerce_value(value, param=None, ctx=None)

    assert convert(int, " 42 ") == 42
    assert convert(float, "0.5") == 0.5
    assert convert(bool, "yes") is True and convert(bool, "0") is False
    assert convert(Path, "a/b") == Path("a/b")
    assert convert(str, "x") == "x"
    assert _plain_converter(resolve_type_descriptor(int, OptionInfo(min=0))) is None  # typer's own
