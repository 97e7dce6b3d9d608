# The two commands of README.md. PYTHON is any Python 3.11+ (a virtualenv's, or conda's).
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: install demo test test-all sync-notebooks

# In a git checkout, also configure the nbstripout filter that .gitattributes names: a
# notebook saved with outputs in JupyterLab is committed without them (cell ids kept, so
# the .ipynb stays byte-identical to what `jupytext --sync` writes).
STRIP = "$(shell $(PYTHON) -c 'import sys; print(sys.executable)')" -m nbstripout --keep-id \
	--extra-keys "metadata.papermill cell.metadata.papermill cell.metadata.execution"

install:
	$(PIP) -e ".[test,text]" "nbstripout>=0.7"
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git config filter.nbstripout.clean '$(STRIP)' && git config filter.nbstripout.smudge cat \
		&& git config diff.ipynb.textconv '$(STRIP) -t' && echo "nbstripout filter configured"; \
	fi

demo: install
	$(PYTHON) -m nbhelpers demo

test: install
	$(PYTHON) -m pytest -q

test-all: install
	$(PYTHON) -m pytest -q -m ""

# Through $(PYTHON), like every other target: works without an activated virtualenv.
sync-notebooks:
	$(PYTHON) -m jupytext --sync notebooks/*.py
