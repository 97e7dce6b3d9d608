# The two commands of README.md. PYTHON is any Python 3.11+ (a virtualenv's, or conda's).
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: install demo test test-all sync-notebooks

install:
	$(PIP) -e ".[test,text]"

demo: install
	$(PYTHON) -m nbhelpers demo

test: install
	$(PYTHON) -m pytest -q

test-all: install
	$(PYTHON) -m pytest -q -m ""

sync-notebooks:
	jupytext --sync notebooks/*.py
