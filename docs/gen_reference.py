"""Run by the mkdocs-gen-files plugin: writes the reference pages into the site being built."""

import sys
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).parent))

from reference_pages import reference_pages

for name, text in reference_pages().items():
    with mkdocs_gen_files.open(f"reference/{name}", "w") as page:
        page.write(text)
