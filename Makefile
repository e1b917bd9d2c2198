# The two commands of the README. Both start by making sure .venv is set up (seconds when it is).
PY := .venv/bin/python

.PHONY: install test demo web clean-cache

install:
	bash scripts/setup_env.sh

test: install
	$(PY) -m pytest -q tests

demo: install
	bash scripts/demo.sh

# the web demo on 127.0.0.1:$(PORT); CONFIG / PORT / OPTS override, e.g. make web OPTS="MODEL.WEIGHTS m.pth"
web: install
	$(PY) tools/web_demo.py --config-file $(or $(CONFIG),configs/testing/odise_tiny.yaml) --port $(or $(PORT),7860) $(if $(OPTS),--opts $(OPTS))

clean-cache:
	rm -rf $${ODISE_EXT_CACHE:-$$HOME/.cache/odise_ext}/shapes_world_v1
