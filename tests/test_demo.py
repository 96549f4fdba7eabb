"""The README's first command: `patchline demo` runs the whole loop on bundled real data."""

import subprocess
import sys


def test_the_quick_demo_trains_evaluates_and_streams_verdicts_to_mqtt(tmp_path):
    done = subprocess.run([sys.executable, "-m", "patchline.cli", "demo", "--quick", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "line elpv-mono: bank" in out and "elpv-mono" in out
    assert (tmp_path / "out" / "results" / "results.md").is_file()
    assert (tmp_path / "models" / "efficientnet_lite0_224_layer3.onnx").is_file()
    assert "verdicts received: 20" in out, out
    assert "`patchline alarms` printed" in out
    parity = float(out.split("max relative difference ")[1].split()[0])
    assert parity < 1e-4
    last = out.strip().splitlines()[-1]
    report = tmp_path / "out" / "results" / "report.html"
    assert last.startswith(f"report: {report}"), last  # the demo ends by naming its report
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 2 and "data:image/jpeg;base64," in page
