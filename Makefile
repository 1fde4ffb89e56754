# Everything a fresh machine needs: `make demo` (main job) and `make test` (test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
RUNS ?= runs
PORT ?= 8501

.PHONY: install demo demo-run test browser-deps postgres-deps bench bench-status clean

# pyproject.toml holds the ranges; constraints.txt the exact versions of this machine (torch's CPU build).
$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Debian's Chromium for the real-browser dashboard test; the test skips with a reason where it cannot be installed.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1) \
	  || echo "note: could not install chromium; the browser test will skip")

# Debian's PostgreSQL for the search-across-machines test: installed where missing, a cluster created where
# none exists, started (as the postgres user) where down. Never fails the build; the test skips with a reason.
postgres-deps:
	@command -v pg_ctlcluster >/dev/null 2>&1 || (DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1) \
	  || echo "note: could not install postgresql; the PostgreSQL search test will skip")
	@command -v pg_lsclusters >/dev/null 2>&1 && { \
	  [ -n "$$(pg_lsclusters -h 2>/dev/null)" ] || pg_createcluster "$$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main >/dev/null 2>&1; \
	  pg_lsclusters -h 2>/dev/null | awk '{print $$1, $$2, $$4}' | while read -r ver name state; do \
	    [ "$$state" = online ] || pg_ctlcluster "$$ver" "$$name" start >/dev/null 2>&1 \
	      || echo "note: could not start PostgreSQL $$ver/$$name; the PostgreSQL search test will skip"; done; } || true

demo: demo-run
	@echo "Dashboard: http://127.0.0.1:$(PORT)  (Ctrl-C to stop)"
	DYNABERT_RUNS_DIR=$(RUNS) $(VENV)/bin/streamlit run app/main.py --server.address 127.0.0.1 --server.port $(PORT)

# The demo's pipeline alone (what `make demo` runs before serving the dashboard; bench/pipeline_quick.py times it).
demo-run: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/dynabert run --task bbc --run-dir $(RUNS)/demo --preset quick

test: install browser-deps postgres-deps
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q

# Every benchmark at the current commit, rewriting results/ (see results/README.md and bench/registry.py):
# `make bench`, `make bench ONLY=search`, `make bench QUICK=1` (small sizes, temporary folder), FORCE=1 on a busy machine.
bench: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m bench.run $(if $(ONLY),--only $(ONLY)) $(if $(QUICK),--quick) $(if $(FORCE),--force)

# Which result files are stale (the code they measure changed since their commit), with the files that changed:
# a report (exit 0); the tests never fail on it. Needs git history only, not the venv.
bench-status:
	@$(if $(wildcard $(PY)),$(PY),python3) -m bench.freshness

clean:
	rm -rf $(VENV) .pytest_cache
