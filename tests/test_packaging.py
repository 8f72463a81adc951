"""The wheel carries the rule files and the JSON Schema, and works outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_rules_and_schema_and_runs_from_elsewhere(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("gandit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for bundled in sorted(REPO.glob("rules/*.toml")):
        assert f"gandit/_rules/{bundled.name}" in names
    assert "gandit/data/audit.schema.json" in names
    for template in sorted(REPO.glob("templates/*")):
        assert f"gandit/_templates/{template.name}" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    probe = ("import gandit, gandit.rules as r, gandit.report.result as res; "
             "print(gandit.__file__); print(','.join(r.bundled_rule_names())); "
             "print(r.load_rules('kaggle-generative-dog-images').submission.count); print(res.schema()['$id']); "
             "import gandit.report.html as h; print(h.templates_dir()); "
             "print(h.environment().get_template('report.html.j2').name, len(h.script_source('report.js')) > 0)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         check=True, capture_output=True, text=True).stdout.splitlines()
    assert out[0].startswith(str(site))  # the installed copy, not the source tree
    assert out[1] == "default,kaggle-generative-dog-images"
    assert out[2] == "10000" and out[3] == "gandit.audit/1"
    assert out[4].startswith(str(site)) and out[5] == "report.html.j2 True"   # templates ship in the wheel
