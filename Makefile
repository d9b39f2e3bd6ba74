# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup system-packages demo test lint bench soak-faults clean

setup: system-packages $(VENV)/.installed

system-packages:
	@scripts/install-system-packages.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[local,test]'
	touch $@

demo: setup
	$(BIN)/skynet demo

test: setup
	$(BIN)/ruff check skynet_tasks workers celeryconfig.py tests benchmarks
	$(BIN)/mypy skynet_tasks workers
	$(BIN)/bandit -q -r skynet_tasks workers -c pyproject.toml
	# Three workers on two cores (pytest-xdist): much of a test is waiting (health checks, deadlines, long
	# polls), which a third worker fills: 11:43 against 13:57 with two (docs/development.md). A module's tests
	# stay together, stack-built modules share one worker (tests/conftest.py).
	$(BIN)/pytest --numprocesses 3

bench: setup
	$(BIN)/python -m benchmarks.rollout --sizes 3,10,20,40 --out benchmarks/results/rollout.json
	$(BIN)/python -m benchmarks.rollout --sizes 40 --canary-waits-for-line --out benchmarks/results/rollout-held.json
	$(BIN)/python -m benchmarks.conductor_scale --sizes 10,100,1000 --out benchmarks/results/conductor.json
	$(BIN)/python -m benchmarks.idle_cost --instances 3 --seconds 600 --out benchmarks/results/idle.json
	$(BIN)/python -m benchmarks.webhook --out benchmarks/results/webhook.json
	$(BIN)/python -m benchmarks.rp_render --out benchmarks/results/rp_render.json
	$(BIN)/python -m benchmarks.scrape_cost --sizes 10,100 --out benchmarks/results/scrape.json
	$(BIN)/python -m benchmarks.stack_boot --sizes 1,3,6 --out benchmarks/results/stack_boot.json
	$(MAKE) soak-faults

# The soak of issue 18: 50 rollouts in two groups, on a local AWS with every fault mode on.
soak-faults: setup
	$(BIN)/python -m benchmarks.soak --rollouts 50 --seed 1 --faults conflicts,throttle,duplicates,stale-reads \
		--out benchmarks/results/soak-faults.json

clean:
	rm -rf $(VENV) .local-cluster .pytest_cache .mypy_cache .ruff_cache
