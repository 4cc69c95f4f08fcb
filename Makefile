# skyclear: `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO ?= demo
TORCH_CPU ?= torch==2.13.0

.PHONY: install demo test lint typecheck pytest bench clean

install: $(STAMP)

# torch goes first: a pinned CPU build where none is importable (an unpinned torch
# would pull several GB of CUDA packages), or the torch the system already has.
$(STAMP): pyproject.toml
	@if $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
		echo "using the torch already importable by $(PYTHON)"; \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -c "import torch" >/dev/null 2>&1 || $(PY) -m pip install --quiet $(TORCH_CPU)
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

demo: install
	$(VENV)/bin/degrade samples --out $(DEMO)/samples
	@for image in $(DEMO)/samples/*.png; do \
		name=$$(basename $$image .png); \
		depth=""; \
		if [ -f $(DEMO)/samples/$$name.depth.npy ]; then depth="--depth $(DEMO)/samples/$$name.depth.npy"; fi; \
		$(VENV)/bin/degrade preview --src $$image $$depth --out $(DEMO)/previews/$$name.png || exit 1; \
	done
	@echo "demo: open $(DEMO)/previews/*.png"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	OMP_NUM_THREADS=2 $(PY) -m pytest -q

test: lint typecheck pytest

bench: install
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/ops.py

clean:
	rm -rf $(VENV) $(DEMO) build dist .mypy_cache .ruff_cache .pytest_cache
