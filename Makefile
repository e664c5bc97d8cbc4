# Reelstream: the operators' interface. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EDGES ?= 2
SHARDS ?= 2
# `make up` runs the autoscaler as part of the stack; AUTOSCALE=0 starts a fixed-size stack.
# MAX_EDGES / MAX_COUNTERS: its ceilings (counters are pinned unless MAX_COUNTERS is set);
# UP_ARGS passes more `reelstream up` options, e.g. "--autoscale-interval 5 --scale-down-window 60".
AUTOSCALE ?= 1
UP_ARGS ?=
UP_AUTOSCALE = $(if $(filter 0 no false off,$(AUTOSCALE)),--no-autoscale) \
  $(if $(MAX_EDGES),--max-edges $(MAX_EDGES)) $(if $(MAX_COUNTERS),--max-counters $(MAX_COUNTERS)) $(UP_ARGS)
PYTEST_ARGS ?=
export PATH := $(BIN):$(PATH)

PROTOS := $(wildcard protos/*.proto)
GENERATED := $(PROTOS:.proto=_pb2.py)

.PHONY: help deps system-deps venv proto run up down scale drain status logs test test-slow test-player test-console console-moderator lint \
        cassandra-up cassandra-down cassandra-wipe cassandra-status cassandra-cluster-up \
        redis-up redis-down clean chaos fuzz certs toxiproxy soak

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

system-deps: ## Install missing Debian packages (redis-server, ffmpeg, Java 17, Maven)
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv with the package and its dev tools

$(GENERATED) &: $(PROTOS) $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. \
	  --mypy_out=quiet:. --mypy_grpc_out=quiet:. $(PROTOS)

proto: $(GENERATED) ## Regenerate the gRPC code in protos/ from the .proto files

deps: system-deps venv proto ## Everything needed to run and test

certs: deps ## Development CA and one mTLS certificate per identity in var/certs (idempotent; docs/security.md)
	$(BIN)/python -m reelstream.infra.dev_certs

run: deps ## Install what is missing, start the whole stack and print the endpoints
	$(BIN)/reelstream up --edges $(EDGES) --shards $(SHARDS) $(UP_AUTOSCALE)
	@echo "'make status' shows health, 'make logs' the logs, 'make down' stops everything."

up: deps ## Start the stack (EDGES=n SHARDS=m) and its autoscaler (AUTOSCALE=0: none; MAX_EDGES, MAX_COUNTERS), waiting until every service is SERVING
	$(BIN)/reelstream up --edges $(EDGES) --shards $(SHARDS) $(UP_AUTOSCALE)

down: ## Stop every process the stack started (the autoscaler first, services, Redis, Cassandra)
	@if [ -x $(BIN)/reelstream ]; then $(BIN)/reelstream down; fi

scale: deps ## Resize the running stack (EDGES=n SHARDS=m; MAX_EDGES/MAX_COUNTERS): the sizes become the autoscaler's floors
	$(BIN)/reelstream scale --edges $(EDGES) --shards $(SHARDS) \
	  $(if $(MAX_EDGES),--max-edges $(MAX_EDGES)) $(if $(MAX_COUNTERS),--max-counters $(MAX_COUNTERS))

drain: ## Drain one node and stop it (NODE=edge-1: stop taking work, flush the journal; NODE=counter-1: hand its shards off)
	@test -n "$(NODE)" || { echo "usage: make drain NODE=edge-1"; exit 2; }
	$(BIN)/reelstream drain $(NODE)

status: ## Services and the autoscaler, their health, which counter serves which logical shard, Cassandra and Redis
	@$(BIN)/reelstream status

logs: ## Tail the services' logs (SERVICE=edge-0 or SERVICE=autoscaler for one; NAME= works too)
	@$(BIN)/reelstream logs $(or $(SERVICE),$(NAME))

test: deps toxiproxy ## Install what is missing, start the real servers the tests need, run the suite
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: deps toxiproxy ## Also the long chaos/soak tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-player: deps ## hls.js in headless Chromium plays a reel from a real edge (installs chromium, node, npm packages)
	@scripts/install-system-deps.sh player
	$(BIN)/python -m pytest tests/integration/test_player.py $(PYTEST_ARGS)

test-console: deps ## The moderator console in headless Chromium: login, poster, remove (installs chromium, node, npm packages)
	@scripts/install-system-deps.sh player
	$(BIN)/python -m pytest tests/integration/test_console_browser.py $(PYTEST_ARGS)

console-moderator: deps ## Add a moderator to the console (NAME=alice; asks for the password; restart the stack after the first)
	@test -n "$(NAME)" || { echo "usage: make console-moderator NAME=<name>"; exit 2; }
	$(BIN)/python -m origin.console_passwords $${REELSTREAM_VAR_DIR:-var}/console-moderators $(NAME)

chaos: deps toxiproxy ## Fault suite: kill -9 of every process, a 3-node Cassandra (RF3, QUORUM) losing a node, Toxiproxy faults, disk full
	$(BIN)/python -m pytest -m slow tests/integration/test_faults.py $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/integration/test_toxiproxy_faults.py \
	  tests/integration/test_origin_disk_full.py $(PYTEST_ARGS)

toxiproxy: ## Install toxiproxy-server/-cli from the Go module proxy into .tools/bin (once)
	@scripts/install-toxiproxy.sh


FUZZ_EXAMPLES ?= 200
fuzz: deps ## Bad-input suite in full: every RPC and the HLS endpoints fuzzed (FUZZ_EXAMPLES per RPC), malformed media
	REELSTREAM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -s \
	  tests/integration/test_fuzz_grpc.py tests/integration/test_fuzz_http.py \
	  tests/integration/test_malformed_media.py $(PYTEST_ARGS)

lint: deps ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

cassandra-up: deps ## Start one Cassandra node on 127.0.0.1:9042 (no-op when running)
	$(BIN)/python -m reelstream.infra.cassandra_node up

cassandra-cluster-up: deps ## Start a 3-node Cassandra cluster on 127.0.0.1-3
	$(BIN)/python -m reelstream.infra.cassandra_node up --nodes 3

cassandra-down: ## Stop Cassandra
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m reelstream.infra.cassandra_node down; fi

cassandra-wipe: ## Stop Cassandra and delete its data
	$(BIN)/python -m reelstream.infra.cassandra_node wipe

cassandra-status: ## Cassandra nodes and their state
	@$(BIN)/python -m reelstream.infra.cassandra_node status

redis-up: deps ## Start the edges' Redis instances (AOF on)
	@for i in $$(seq 0 $$(($(EDGES) - 1))); do \
	  $(BIN)/python -m reelstream.infra.redis_server up --journal --name edge-$$i --port $$((6390 + i)); done

redis-down: ## Stop every Redis instance the project started
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m reelstream.infra.redis_server down --all; fi

clean: down ## Stop everything and delete local state, caches and generated code
	rm -rf var results .mypy_cache .ruff_cache .pytest_cache .hypothesis
	rm -f protos/*_pb2*.py protos/*_pb2*.pyi

# --- Benchmarks (loadtest/bench); every load loop is bounded in time, traffic stays on loopback.
BENCH_STAMP := $(VENV)/.bench-installed-stamp

.PHONY: bench bench-counters bench-stop

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench-counters: deps $(BENCH_STAMP) ## Counting benchmark vs naive Cassandra, Redis, gRPC ceiling (BENCH_SECONDS=n)
	$(BIN)/python -m loadtest.bench counters

.PHONY: bench-rollup
bench-rollup: deps $(BENCH_STAMP) ## A counter shard's roll-up cost per reel by reels per Cassandra request (BENCH_ROLLUP_REELS/_ROUNDS) -> results/bench-rollup.json
	$(BIN)/python -m loadtest.bench.rollup_writes

.PHONY: bench-video-transcode
bench-video-transcode: deps $(BENCH_STAMP) ## Origin ladder: one ffmpeg process vs one per rung, origin overhead, first rung (BENCH_VIDEO_ROUNDS=n)
	$(BIN)/python -m loadtest.bench.video_transcode

bench: bench-counters bench-video bench-spam bench-moderation bench-scale ## Every benchmark: counting, video (transcode + edge), spam filter, moderation, scale-out

bench-stop: ## Stop what an interrupted benchmark left running (its services, Redis, Cassandra)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m loadtest.bench stop; fi

.PHONY: soak
SOAK_SECONDS ?= 3600
soak: deps $(BENCH_STAMP) ## One hour at half the counting peak: RSS, fds, journal depth flat? -> results/soak.json (SOAK_SECONDS=n)
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m loadtest.bench.soak

# mypy checks loadtest/, which imports the bench extra (numpy, matplotlib, psutil).
lint: $(BENCH_STAMP)

.PHONY: bench-scale
bench-scale: deps $(BENCH_STAMP) ## Pipeline rate at 1/2/4 edges and counters (+ CPU), 8 vs 2 logical shards, handoff time, spike to scaled-out (BENCH_SCALE_SECONDS=n, BENCH_SCALE_GRID=full) -> results/bench-scale.json
	$(BIN)/python -m loadtest.bench.scale

# --- Spam filter (spam/, docs/spam.md): simulated traffic, model artifact, evaluation.
.PHONY: train-spam eval-spam

train-spam: deps ## Train the spam classifier on served features of simulated traffic -> models/spam/model-v3.pkl (+ .json)
	$(BIN)/python -m spam.served_training

# EVAL_SPAM_ARGS: e.g. `--leave-one-out none` or `--leave-one-out lockstep,slow_drip`, `--no-delay`.
EVAL_SPAM_ARGS ?=
eval-spam: deps ## Evaluate the spam filter on held-out seeds and families, detection delay -> results/eval-spam.json
	$(BIN)/python -m spam.evaluation $(EVAL_SPAM_ARGS)

.PHONY: bench-spam
bench-spam: eval-spam ## eval-spam, then its section of docs/benchmarks.md
	$(BIN)/python -m loadtest.bench.spam_section

.PHONY: bench-spam-cost
bench-spam-cost: deps $(BENCH_STAMP) ## Counting rate with the edges' spam screen + forwarding off vs on, alternated (BENCH_SPAM_COST_SECONDS/_ROUNDS) -> results/bench-spam-cost.json
	$(BIN)/python -m loadtest.bench.spam_cost

# --- Load tests with Locust and independent gRPC clients (loadtest/, docs/loadtest.md).
# Against the running stack (`make run`); loopback only, every run bounded in time.
LOADTEST_USERS ?= 50
LOADTEST_SPAWN_RATE ?= 10
LOADTEST_SECONDS ?= 120
LOADTEST_SHAPE ?=
LOADTEST_WORKERS ?= 2
LOADTEST_MASTER_PORT ?= 5557
LOADTEST_OUT ?= results/loadtest
LOADTEST_ARGS ?=
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
GOBIN_DIR := $(shell $(GO) env GOPATH 2>/dev/null || echo $(HOME)/go)/bin
LOCUST_RUN := REELSTREAM_LOADTEST_SHAPE=$(LOADTEST_SHAPE) \
  REELSTREAM_LOADTEST_SHAPE_USERS=$(LOADTEST_USERS) \
  REELSTREAM_LOADTEST_SHAPE_DURATION_S=$(LOADTEST_SECONDS) \
  REELSTREAM_LOADTEST_SHAPE_SPAWN_RATE=$(LOADTEST_SPAWN_RATE) \
  $(BIN)/locust -f loadtest/locustfile.py
LOCUST_HEADLESS := --headless -u $(LOADTEST_USERS) -r $(LOADTEST_SPAWN_RATE) \
  -t $(LOADTEST_SECONDS)s --stop-timeout 5 --csv $(LOADTEST_OUT)/run \
  --html $(LOADTEST_OUT)/report.html

.PHONY: loadtest loadtest-ui loadtest-distributed loadtest-scale grpc-tools grpc-probe

loadtest: deps ## Headless Locust run (LOADTEST_USERS/_SECONDS/_SHAPE); HTML+CSV in results/loadtest/
	@mkdir -p $(LOADTEST_OUT)
	$(LOCUST_RUN) $(LOCUST_HEADLESS) $(LOADTEST_ARGS)

loadtest-ui: deps ## Locust's web UI on http://127.0.0.1:8089 (loopback only)
	$(LOCUST_RUN) --web-host 127.0.0.1 --web-port 8089 $(LOADTEST_ARGS)

loadtest-distributed: deps ## Headless run by one master and LOADTEST_WORKERS workers on this machine
	@mkdir -p $(LOADTEST_OUT)
	@pids=""; for i in $$(seq 1 $(LOADTEST_WORKERS)); do \
	  $(LOCUST_RUN) --worker --master-host 127.0.0.1 --master-port $(LOADTEST_MASTER_PORT) \
	    --loglevel WARNING > $(LOADTEST_OUT)/worker-$$i.log 2>&1 & pids="$$pids $$!"; done; \
	$(LOCUST_RUN) --master --master-bind-host 127.0.0.1 --master-bind-port $(LOADTEST_MASTER_PORT) \
	  --expect-workers $(LOADTEST_WORKERS) --expect-workers-max-wait 60 \
	  $(LOCUST_HEADLESS) $(LOADTEST_ARGS); status=$$?; \
	for _ in $$(seq 1 30); do alive=""; for p in $$pids; do kill -0 $$p 2>/dev/null && alive=1; done; \
	  [ -z "$$alive" ] && break; sleep 1; done; \
	for p in $$pids; do kill $$p 2>/dev/null || true; done; exit $$status

loadtest-scale: deps ## Scale counters and edges up and down under Locust: <0.1% failures, exact counts (needs `make up`)
	$(BIN)/python -m loadtest.scale_under_load

grpc-tools: ## Install grpcurl and ghz from the Go module proxy when missing
	@test -x $(GOBIN_DIR)/grpcurl || $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest
	@test -x $(GOBIN_DIR)/ghz || $(GO) install github.com/bojand/ghz/cmd/ghz@latest

grpc-probe: grpc-tools ## grpcurl lists/calls every service by reflection; ghz drives SendEvents
	GRPCURL=$(GOBIN_DIR)/grpcurl GHZ=$(GOBIN_DIR)/ghz bash loadtest/grpc_probe.sh

# --- Operations (docs/operations.md): the autoscaler and the Kubernetes manifests.
.PHONY: autoscale k8s-validate

autoscale: deps ## Run an autoscaler by hand (DRY_RUN=1: log decisions only; acting needs `make up AUTOSCALE=0`, which runs none)
	$(BIN)/reelstream autoscale $(if $(DRY_RUN),--dry-run) $(AUTOSCALE_ARGS)

k8s-validate: $(STAMP) ## kubeconform -strict on deploy/k8s (installs kubeconform and the schemas once)
	$(BIN)/python -m reelstream.infra.k8s_validation

# --- Video edge benchmark: edge vs nginx (wrk), cache policy vs LRU/Belady, coalescing.
.PHONY: bench-video-edge bench-video

bench-video: bench-video-transcode bench-video-edge ## Both video benchmarks, then results/bench-video.json (issue 4's figures)
	$(BIN)/python -m loadtest.bench.video_summary

bench-video-edge: deps $(BENCH_STAMP) ## Edge hot segments vs nginx, hit ratio vs LRU/Belady, coalescing (BENCH_VIDEO_SECONDS=n)
	@scripts/install-system-deps.sh bench
	$(BIN)/python -m loadtest.bench.video_edge

# --- Moderation (moderation/, docs/moderation.md)
.PHONY: bench-moderation
bench-moderation: deps ## Moderation latency vs transcode, NudeNet/vPDQ frames/s, bank lookup (100k hashes) -> results/bench-moderation.json
	$(BIN)/python -m loadtest.bench.moderation
