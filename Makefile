# One command each for a newcomer: every target first creates or refreshes .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# DDS never leaves this host; each target speaks on its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOCALHOST_ONLY := 1

.PHONY: venv test demo bench demo-weights lint clean

$(STAMP): setup.py setup.cfg package.xml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch; a plain `torch` requirement would pull the CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[ros,test]'
	touch $(STAMP)

venv: $(STAMP)

test: venv
	ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-42} $(PY) -m pytest -q -ra

demo: venv
	ROS_DOMAIN_ID=43 $(VENV)/bin/denseflow demo

bench: venv
	ROS_DOMAIN_ID=45 $(VENV)/bin/denseflow bench

demo-weights: venv
	$(PY) -m training.train --config training/configs/demo_lite.yaml
	$(PY) -m training.train --config training/configs/demo_lite_search.yaml
	$(PY) -m training.train --config training/configs/demo_lite_wide.yaml
	$(PY) -m training.train --config training/configs/demo_lite_fine.yaml
	$(PY) -m training.train --config training/configs/demo_lite_align.yaml

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build install log demo-output *.egg-info
