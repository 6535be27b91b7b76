# The two set-up commands of README.md live here: `make demo` and `make test`.
# Both create .venv (once), install everything into it, and keep DDS on loopback with a
# per-run domain id so parallel runs never see each other.

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DOMAIN  := $(shell shuf -i 10-200 -n 1)
ROS_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$(DOMAIN) OMP_NUM_THREADS=1

.PHONY: install demo test lint bench policy clean

install: $(STAMP)

$(STAMP): requirements.txt setup.py tools/build_grid_map_msgs.py
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) tools/build_grid_map_msgs.py $(VENV)
	$(PY) -m pip install -e . --no-deps
	touch $(STAMP)

demo: install
	$(ROS_ENV) $(VENV)/bin/anymal-ros demo

lint: install
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collects nothing; that is a broken suite, not a pass.
test: install lint
	$(ROS_ENV) $(PY) -m pytest -q

# The quick benchmarks (a few minutes; run on a quiet machine). JSON in benchmarks/results/.
# The LunarLander-vs-SB3 comparison takes about an hour: see README "Training the teacher".
bench: install
	$(ROS_ENV) $(PY) benchmarks/latency.py --steps 10000 --out benchmarks/results/latency.json
	$(ROS_ENV) $(PY) benchmarks/sim_throughput.py --num-envs 1 64 256 --steps 200
	$(ROS_ENV) $(PY) benchmarks/update_throughput.py --num-envs 1024 --steps 24
	$(ROS_ENV) $(PY) benchmarks/distill_throughput.py --num-envs 16 64 --iterations 3
	$(ROS_ENV) $(PY) benchmarks/store_io.py --out benchmarks/results/store_io.json
	$(ROS_ENV) $(PY) benchmarks/input_decode.py
	$(ROS_ENV) $(PY) benchmarks/map_path.py
	$(ROS_ENV) $(PY) benchmarks/ros_latency.py --seconds 60

# The recipe of the bundled policy (policies/MODEL_CARD.md): teacher -> student (distillation,
# then a stairs-heavy second stage) -> ONNX ->
# evaluation. Hours on a 2-core CPU; every stage resumes from its newest checkpoint, so
# re-running `make policy` after an interruption continues where it stopped.
RUNS ?= runs/default_policy
ANYMAL := $(ROS_ENV) $(VENV)/bin/anymal-ros
resume = $(if $(wildcard $(1)/checkpoints/latest.pt),--resume $(1)/checkpoints/latest.pt,)
TEACHER := $(RUNS)/teacher/checkpoints/latest.pt
# The model card's evaluation: the teacher first (its training simulator, with the student's
# 12 cm CPG swing from config/distill.yaml), the student beside it; commands up to 1 m/s
# forward, 0.5 sideways, 1 rad/s yaw; no pushes; 30 robots x 20 s.
# (--set last: the slope row appends one more override.)
EVAL = --compare $(RUNS)/student.onnx --noise none noisy --num-envs 30 --set \
	"commands.lin_vel_y=[-0.5,0.5]" randomization.push_force=0.0 randomization.push_torque=0.0 \
	actions.swing_height=0.12
policy: install
	$(ANYMAL) train ppo --config config/teacher_ppo.yaml --run-dir $(RUNS)/teacher \
		$(call resume,$(RUNS)/teacher)
	$(ANYMAL) distill --teacher $(RUNS)/teacher/checkpoints/latest.pt \
		--config config/distill.yaml --run-dir $(RUNS)/student $(call resume,$(RUNS)/student)
	$(ANYMAL) distill --teacher $(RUNS)/teacher/checkpoints/latest.pt \
		--config config/distill_stairs.yaml --run-dir $(RUNS)/student_stairs \
		$(or $(call resume,$(RUNS)/student_stairs),--resume $(RUNS)/student/checkpoints/latest.pt)
	$(ANYMAL) export $(RUNS)/student_stairs/checkpoints/latest.pt --out $(RUNS)/student.onnx
	$(ANYMAL) eval $(TEACHER) --terrains flat --level 0 --out $(RUNS)/eval_flat $(EVAL)
	$(ANYMAL) eval $(TEACHER) --terrains rough stairs_up stairs_down --level 3 \
		--out $(RUNS)/eval_rough $(EVAL)
	$(ANYMAL) eval $(TEACHER) --terrains slope_up slope_down --level 5 \
		--out $(RUNS)/eval_slope $(EVAL) "terrain.slope=[0.0,0.4712]"

clean:
	rm -rf $(VENV) build install log
