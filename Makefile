# skyclear: `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO ?= demo
TORCH_CPU ?= torch==2.13.0

.PHONY: install demo test lint typecheck pytest bench bench-synthesis bench-train clean

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

DEMO_STEPS ?= 440

# The whole story on the embedded sample photos: previews, a CDD-11-style store, a few
# minutes of CPU training of the tiny restorer, its per-tier evaluation, and restored
# test photos. Run again, each stage resumes or keeps what is done.
demo: install
	$(VENV)/bin/degrade samples --out $(DEMO)/samples
	@for image in $(DEMO)/samples/photos/*.png; do \
		name=$$(basename $$image .png); \
		depth=""; \
		if [ -f $(DEMO)/samples/depth/$$name.npy ]; then depth="--depth $(DEMO)/samples/depth/$$name.npy"; fi; \
		$(VENV)/bin/degrade preview --src $$image $$depth --out $(DEMO)/previews/$$name.png || exit 1; \
	done
	$(VENV)/bin/degrade make-cdd11 --src $(DEMO)/samples/photos --depth $(DEMO)/samples/depth \
		--out $(DEMO)/cdd11.zarr --size 256 --variants 4 --workers 2 --test-fraction 0.2
	@if [ -f $(DEMO)/run/last.pt ]; then \
		$(VENV)/bin/restore train --data $(DEMO)/cdd11.zarr --out $(DEMO)/run --resume; \
	else \
		$(VENV)/bin/restore train --data $(DEMO)/cdd11.zarr --out $(DEMO)/run --config tiny \
			--steps $(DEMO_STEPS) --crop 96 --batch-size 8 --workers 1 --lr 2e-3 \
			--set optim.warmup_steps=20 --set optim.ema_decay=0.99 --set val_every=100 \
			--set loss.mask_weight=1 --set loss.presence_weight=4 --set loss.overlap_weight=1; \
	fi
	$(VENV)/bin/restore eval --ckpt $(DEMO)/run/last.pt --data $(DEMO)/cdd11.zarr \
		--out $(DEMO)/report
	@[ -d $(DEMO)/cdd11 ] || $(VENV)/bin/degrade export --store $(DEMO)/cdd11.zarr \
		--format folder --out $(DEMO)/cdd11
	$(VENV)/bin/restore run --ckpt $(DEMO)/run/last.pt --input $(DEMO)/cdd11/test/low_haze_snow \
		--out $(DEMO)/restored --save-maps
	@echo "demo: previews in $(DEMO)/previews/, the dataset in $(DEMO)/cdd11.zarr, the run in" \
		"$(DEMO)/run/, the report in $(DEMO)/report/eval.md, restored photos in $(DEMO)/restored/"

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
	$(PY) benchmarks/augment.py

bench-synthesis: install
	$(PY) benchmarks/synthesis.py --photos 50 500

bench-train: install
	$(PY) benchmarks/train.py --steps 40

clean:
	rm -rf $(VENV) $(DEMO) build dist .mypy_cache .ruff_cache .pytest_cache
