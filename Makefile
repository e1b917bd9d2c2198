# The two commands of the README. Both start by making sure .venv is set up (seconds when it is).
PY := .venv/bin/python

.PHONY: install test demo clean-cache

install:
	bash scripts/setup_env.sh

test: install
	$(PY) -m pytest -q tests

demo: install
	bash scripts/demo.sh

clean-cache:
	rm -rf $${ODISE_EXT_CACHE:-$$HOME/.cache/odise_ext}/shapes_world_v1
