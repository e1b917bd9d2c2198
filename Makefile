# The two commands of the README. Both start by making sure .venv is set up (seconds when it is).
PY := .venv/bin/python

.PHONY: install test demo web clean-cache

install:
	bash scripts/setup_env.sh

test: install
	$(PY) -m pytest -q tests

demo: install
	bash scripts/demo.sh

# the web demo on 127.0.0.1:$(PORT), one tab per task (the tiny random models by default);
# CONFIG / PORT / OPTS override, e.g. make web CONFIG=configs/odise_coco.yaml OPTS="MODEL.WEIGHTS m.pth"
WEB_CONFIGS := configs/testing/odise_tiny.yaml configs/testing/png_tiny.yaml configs/testing/vpd_semseg_tiny.yaml \
	configs/testing/vpd_depth_tiny.yaml configs/testing/vpd_refer_tiny.yaml configs/testing/vpd_pose_tiny.yaml
web: install
	$(PY) tools/web_demo.py --config-file $(or $(CONFIG),$(WEB_CONFIGS)) --port $(or $(PORT),7860) $(if $(OPTS),--opts $(OPTS))

clean-cache:
	rm -rf $${ODISE_EXT_CACHE:-$$HOME/.cache/odise_ext}/shapes_world_v1
