# The two commands of the README:
#   make demo   runs the main job (offline end-to-end demo)
#   make test   runs the test suite, without the tests marked slow (CI: under 15 minutes on 2 cores)
#   make test-all   runs every test, the slow ones included
# Each creates the virtual environment it needs (.venv) on first use.

PYTHON ?= python3
VENV ?= .venv
# torch/torchvision for this machine (a pair that imports together); override
# for another install, e.g. `make test TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(VENV)/bin/python -m pip install --quiet -e '.[test,plot,export,openvino]'
	# fast-reid 1.4.0, a parity oracle for tests only: its metadata pins torchvision 0.14, so no deps
	$(VENV)/bin/python -m pip install --quiet --no-deps fastreid==1.4.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/modelzoo demo

test: $(STAMP)
	$(VENV)/bin/python -m mypy
	$(VENV)/bin/python -m pytest -m "not slow"

test-all: $(STAMP)
	$(VENV)/bin/python -m mypy
	$(VENV)/bin/python -m pytest
