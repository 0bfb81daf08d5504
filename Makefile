PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export SQLEXT_HOME ?= $(CURDIR)/.sqlext
PORT   ?= 10000

.PHONY: setup demo test bench serve clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,test]'
	# BigDL's metadata pins pyspark==3.1.3; it runs on 3.5.8, so install it without its pins.
	$(BIN)/pip install -q --no-deps bigdl-dllib-spark3==2.4.0 bigdl-core==2.4.0.dev0
	touch $@

demo: setup
	$(BIN)/python -m sqlext.demo --port $(PORT)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.run_all

clean:
	rm -rf .sqlext .pytest_cache
