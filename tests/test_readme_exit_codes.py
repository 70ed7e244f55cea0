"""The documented table of `connections-pipeline run` exit codes is the CLI's, code for code."""

import re

from documentation import documentation_text

from connections_pipeline import cli

ROW = re.compile(r"^\| (\d+) \|(?: `(EXIT_\w+)`)? \| .+ \|$")


def _documented() -> dict[str, int]:
    text = documentation_text()
    table = text[text.index("**`connections-pipeline run` exit codes**") :].split("\n\n")[1]
    rows = [ROW.match(line) for line in table.splitlines()[2:]]
    assert all(rows), table
    return {row[2] or "done": int(row[1]) for row in rows if row}


def test_every_exit_code_is_documented_and_every_documented_code_exists() -> None:
    # Regression: README said an unreachable Finch exits 1; the run is held and exits 3.
    constants = {name: value for name, value in vars(cli).items() if name.startswith("EXIT_")}
    documented = _documented()
    assert documented.pop("done") == 0
    assert documented == constants
