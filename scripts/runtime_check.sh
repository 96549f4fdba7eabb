#!/usr/bin/env bash
# A plant PC's install: a fresh venv with the runtime only (`pip install .`, no extras, numpy 2.x,
# no MindSpore / torch), then `patchline check` and `patchline run` on a line trained with the full
# .venv, and the test modules marked `runtime`. Called by scripts/test.sh (CI); needs PyPI.
# WORK (default: a temporary folder) keeps the venv between runs when set.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
WORK="${WORK:-$(mktemp -d)}"
began=$(date +%s)

# 1. A trained line and its exported models, made with the full install (MindSpore).
if [ ! -f "$WORK/banks/brick/CURRENT" ]; then
  .venv/bin/python - "$WORK" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from sample_data import make_texture_dataset
make_texture_dataset(Path(sys.argv[1]) / "data", ("brick",), n_train=12, n_test_good=3, n_test_defect=3,
                     size=(272, 304), seed=0, defect_folder="defect")
EOF
  .venv/bin/python -m patchline train --line brick --images "$WORK/data/brick/train/good" --backbone efficientnet_lite0 \
    --layer layer2,layer3 --resize 256 --imagesize 224 --banks "$WORK/banks" --quiet
  .venv/bin/python -m patchline export --backbone efficientnet_lite0 --imagesize 224 --out "$WORK/models" >/dev/null
fi
frames="$WORK/frames"
rm -rf "$frames" && mkdir -p "$frames"
for kind in good defect; do
  for f in "$WORK/data/brick/test/$kind"/*; do cp "$f" "$frames/$kind-$(basename "$f")"; done
done

# 2. The runtime install, from a copy of the package (the checkout gets no build/ folder).
rm -rf "$WORK/source" && mkdir -p "$WORK/source"
cp -r patchline pyproject.toml README.md "$WORK/source/"
find "$WORK/source" -name __pycache__ -prune -exec rm -rf {} +
if [ ! -x "$WORK/runtime/bin/python" ]; then
  python3 -m venv "$WORK/runtime"
  "$WORK/runtime/bin/python" -m pip install -q --upgrade pip
fi
"$WORK/runtime/bin/python" -m pip install -q "$WORK/source" "pytest>=8"
RT="$WORK/runtime/bin"
"$RT/python" - <<'EOF'
import importlib.util, numpy
assert numpy.__version__.startswith("2."), f"the runtime install has numpy {numpy.__version__}, not 2.x"
for heavy in ("mindspore", "torch", "skimage", "matplotlib"):
    assert importlib.util.find_spec(heavy) is None, f"{heavy} is installed by `pip install .`"
print(f"runtime venv: numpy {numpy.__version__}, no MindSpore / torch / scikit-image / matplotlib")
EOF

# 3. check and run, as on the plant PC (the pipeline's models/… resolve against the working folder).
cd "$WORK"
export PATCHLINE_MODELS="$WORK/models"
"$RT/patchline" check "$REPO/pipeline/folder_layer2_layer3.pipeline" --line brick --banks "$WORK/banks" | tail -n 1
n=$(ls "$frames" | wc -l)
"$RT/patchline" run "$REPO/pipeline/folder_layer2_layer3.pipeline" --source "$frames" --line brick \
  --banks "$WORK/banks" --quiet > "$WORK/verdicts.jsonl"
"$RT/python" - "$WORK/verdicts.jsonl" "$n" <<'EOF'
import json, sys
verdicts = [json.loads(line) for line in open(sys.argv[1])]
assert len(verdicts) == int(sys.argv[2]), (len(verdicts), sys.argv[2])
assert all(v["verdict"] in ("good", "defect") and v["score"] is not None for v in verdicts), verdicts[:2]
print(f"patchline run (runtime install): {len(verdicts)} verdicts, "
      f"{sum(v['verdict'] == 'defect' for v in verdicts)} defects")
EOF

# 4. The runtime test modules against the installed package (pytest's own entry point: the checkout
#    is not on sys.path, so `import patchline` is the installed one).
cd "$REPO"
unset PATCHLINE_MODELS
mapfile -t modules < <(grep -l "^pytestmark = pytest.mark.runtime" tests/test_*.py)
"$RT/pytest" -q -p no:cacheprovider "${modules[@]}"
(cd "$WORK" && "$RT/python" -c "import patchline; assert 'site-packages' in patchline.__file__, patchline.__file__")
echo "runtime check: $(( $(date +%s) - began )) s"
