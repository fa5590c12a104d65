# Two entry points on a fresh machine:
#   make train [ARGS="algo=rtg env=acrobot seed=3"]   set up .venv, then train
#   make test                                          set up .venv, then lint (ruff, import contracts) and run the test suite
VENV ?= .venv
PYTHON ?= python3
ARGS ?= algo=vpg env=cartpole
BIN := $(VENV)/bin

.PHONY: setup train test lint bench speed

$(BIN)/.pgrun-installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(BIN)/.pgrun-installed

train: setup
	$(BIN)/pgrun $(ARGS)

lint: setup
	$(BIN)/ruff check pgrun tests benchmarks
	$(BIN)/ruff format --check pgrun tests benchmarks
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -n auto  # one worker per core (pytest-xdist)

bench: setup
	bash benchmarks/compare.sh vpg,rtg,baseline,is cartpole:475 acrobot:-100
	bash benchmarks/compare.sh ppo,ppo_penalty,trpo,npg cartpole:475 acrobot:-100 pendulum:-250

speed: setup
	$(BIN)/python benchmarks/speed.py --out docs/speed.md
