# evgrid developer targets.  `make setup up test` == what .ci/run does.
PYTHON ?= python3
SERVICES ?= all

.PHONY: help setup install up down restart status test test-unit test-integration demo lint bench ci clean-run \
	report-screenshot mutants

help:
	@grep -E "^[a-z-]+:.*## " $(MAKEFILE_LIST) | sed -E "s/:.*## /\t/" | expand -t 20

setup: ## pip install -e .[dev] + fetch/build Kafka jars and influxd
	$(PYTHON) -m pip install -e '.[dev]'
	bash infra/install.sh

install: ## fetch/build Kafka jars and influxd only (cached in ~/.cache/evgrid)
	bash infra/install.sh

up: ## start Kafka (127.0.0.1:9092) and InfluxDB (127.0.0.1:8086); SERVICES=kafka|influxdb|all
	bash infra/services.sh up $(SERVICES)

down: ## stop the services started by `make up`
	bash infra/services.sh down $(SERVICES)

restart: ## down + up
	bash infra/services.sh restart $(SERVICES)

status: ## state of each service
	bash infra/services.sh status $(SERVICES)

test: ## the whole suite, exactly as CI runs it (services must be up, or fixtures start them)
	python3 -m pytest -q

test-unit: ## tests that need no services
	$(PYTHON) -m pytest -q -m "not integration"

test-integration: ## tests against the real Kafka / InfluxDB
	$(PYTHON) -m pytest -q -m integration

demo: up ## end-to-end demo (evgrid demo)
	evgrid demo

lint: ## ruff + mypy
	ruff check .
	mypy

BENCHMARKS ?= bench_planner bench_forecaster bench_statecodec bench_floods

bench: ## in-process benchmarks (no services): print their figures; BENCHMARKS="bench_planner ..." picks some
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; PYTHONPATH=$(CURDIR) $(PYTHON) benchmarks/$$b.py || exit 1; done

CHROMIUM ?= chromium
CHROMIUM_FLAGS = --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
	--disable-sync --no-first-run --hide-scrollbars --virtual-time-budget=15000 --window-size=1300,3200

report-screenshot: ## in-process backtest of 40 ACN sessions -> build/report.html + headless Chromium build/report.png
	mkdir -p build
	head -41 streams/simulate/data/acn/caltech_2019-03_sessions.csv > build/s40.csv
	evgrid backtest --sessions build/s40.csv --in-process --import-limit-kw 30 --html build/report.html \
		--json build/report.json
	$(CHROMIUM) $(CHROMIUM_FLAGS) --screenshot=$(CURDIR)/build/report.png file://$(CURDIR)/build/report.html
	@echo "look at build/report.png"

ci: ## run .ci/run locally
	bash .ci/run

clean-run: down ## stop services and delete their state under .run/
	rm -rf .run

MUTANTS_DIR ?= /tmp/evgrid-mutants
MUTMUT_ARGS ?=
mutants: ## mutation testing of streams/dispatch/safety.py and streams/ingest/ in a copy of the tree (docs/testing.md)
	rm -rf $(MUTANTS_DIR) && mkdir -p $(MUTANTS_DIR)
	git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C $(MUTANTS_DIR)
	cd $(MUTANTS_DIR) && PYTHONPATH=$(MUTANTS_DIR) $(PYTHON) -m mutmut run $(MUTMUT_ARGS) || true
	cd $(MUTANTS_DIR) && $(PYTHON) -m mutmut results
