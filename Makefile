# The two set-up commands of README.md live here: `make demo` and `make test`.
# Both create .venv (once), install everything into it, and keep DDS on loopback with a
# per-run domain id so parallel runs never see each other. `make test` also creates
# .venv-jazzy and runs the suite once per ROS 2 release, one after the other.

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DOMAIN  := $(shell shuf -i 10-200 -n 1)
ROS_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$(DOMAIN) OMP_NUM_THREADS=1

# The ROS 2 releases the suite runs against: a venv each, pinned by constraints/<release>.txt
# (`make lock` writes those files; rclpy_<release> picks the release when it does).
RELEASES     := kilted jazzy
venv_kilted  := $(VENV)
venv_jazzy   := $(VENV)-jazzy
rclpy_kilted := 9.1
rclpy_jazzy  := 7.1

# The suite runs in one xdist worker so that a hang costs one test, not the run: a deadlock
# inside DDS/rclpy C code (seen once in CI) is ended by faulthandler (pyproject.toml), which
# prints every thread's stack and kills the worker; the test then runs once more in a fresh
# one. Only crashes are retried: --only-rerun names an error no test raises, so an ordinary
# failure fails the run at once.
PYTEST_HANG_RETRY := -n 1 --reruns 1 --only-rerun NO_ORDINARY_FAILURE_IS_RETRIED

.PHONY: install demo test lint bench policy teacher-anymal-c lock clean \
	$(addprefix test-,$(RELEASES))

install: $(STAMP)

# $(call release_rules,RELEASE): install the release's venv (every step applies to each venv)
# and run the suite in it.
define release_rules
$(venv_$(1))/.installed: requirements.txt $(wildcard requirements-$(1).txt) setup.py \
		constraints/$(1).txt tools/build_grid_map_msgs.py
	python3 -m venv $(venv_$(1))
	$(venv_$(1))/bin/python -m pip install -c constraints/$(1).txt --upgrade pip
	$(venv_$(1))/bin/python -m pip install -c constraints/$(1).txt -r requirements.txt \
		$(addprefix -r ,$(wildcard requirements-$(1).txt))
	$(venv_$(1))/bin/python tools/build_grid_map_msgs.py $(venv_$(1))
	$(venv_$(1))/bin/python -m pip install -e . --no-deps
	touch $(venv_$(1))/.installed

test-$(1): $(venv_$(1))/.installed
	@echo "== ROS 2 $(1) =="
	$$(ROS_ENV) $(venv_$(1))/bin/python -m pytest -q $$(PYTEST_HANG_RETRY)
endef
$(foreach release,$(RELEASES),$(eval $(call release_rules,$(release))))

demo: install
	$(ROS_ENV) $(VENV)/bin/anymal-ros demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# pytest exits 5 when it collects nothing; that is a broken suite, not a pass.
test: lint $(addprefix test-,$(RELEASES))

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

# The second edition's teacher as it is being trained (policies/MODEL_CARD.md, "The second
# edition"): config/teacher_anymal_c.yaml holds the run's current settings; the first seven
# stages replay the settings it had before its seven changes (the curriculum's demotion rule
# at iteration 6,628, stairs on a 2.5 cm grid at 8,135, a 12 cm foot lift and a fourth
# column of stairs up at 9,920, the swing-clearance term at 12,020, no entropy bonus at
# 19,369, DC motors at 22,647, four columns of slopes down at 25,987). Each stage resumes the
# run (a test in the shell: make expands a whole recipe before its first line runs). Later
# overrides of a key win, so each stage's terrain mix comes last.
TEACHER_C := $(RUNS)/teacher_anymal_c
BEFORE_25987 := "env.sim.terrain.proportions={flat: 0.1, rough: 0.1, slope_up: 0.1, \
	slope_down: 0.1, stairs_up: 0.3, stairs_down: 0.15, boxes: 0.15}"
BEFORE_22647 := env.sim.physics.actuator=ideal_pd $(BEFORE_25987)
BEFORE_19369 := ppo.entropy_coef=0.005 $(BEFORE_22647)
BEFORE_12020 := "env.sim.rewards.weights={base_height: -10.0, hip_abduction: -1.0}" \
	$(BEFORE_19369)
BEFORE_9920 := env.sim.actions.swing_height=0.08 $(BEFORE_12020) \
	"env.sim.terrain.proportions={flat: 0.1, rough: 0.2, slope_up: 0.1, slope_down: 0.1, \
	stairs_up: 0.2, stairs_down: 0.15, boxes: 0.15}"
resume_now = $$(test -f $(1)/checkpoints/latest.pt && echo --resume $(1)/checkpoints/latest.pt)
teacher-anymal-c: install
	$(ANYMAL) train ppo --config config/teacher_anymal_c.yaml --run-dir $(TEACHER_C) \
		$(call resume_now,$(TEACHER_C)) --set runner.iterations=6628 \
		env.sim.terrain.curriculum_demotion=speed env.sim.terrain.sharp_resolution=0.0 \
		$(BEFORE_9920)
	$(ANYMAL) train ppo --config config/teacher_anymal_c.yaml --run-dir $(TEACHER_C) \
		$(call resume_now,$(TEACHER_C)) --set runner.iterations=8135 \
		env.sim.terrain.sharp_resolution=0.0 $(BEFORE_9920)
	$(ANYMAL) train ppo --config config/teacher_anymal_c.yaml --run-dir $(TEACHER_C) \
		$(call resume_now,$(TEACHER_C)) --set runner.iterations=9920 $(BEFORE_9920)
	$(ANYMAL) train ppo --config config/teacher_anymal_c.yaml --run-dir $(TEACHER_C) \
		$(call resume_now,$(TEACHER_C)) --set runner.iterations=12020 $(BEFORE_12020)
	$(ANYMAL) train ppo --config config/teacher_anymal_c.yaml --run-dir $(TEACHER_C) \
		$(call resume_now,$(TEACHER_C)) --set runner.iterations=19369 $(BEFORE_19369)
	$(ANYMAL) train ppo --config config/teacher_anymal_c.yaml --run-dir $(TEACHER_C) \
		$(call resume_now,$(TEACHER_C)) --set runner.iterations=22647 $(BEFORE_22647)
	$(ANYMAL) train ppo --config config/teacher_anymal_c.yaml --run-dir $(TEACHER_C) \
		$(call resume_now,$(TEACHER_C)) --set runner.iterations=25986 $(BEFORE_25987)
	$(ANYMAL) train ppo --config config/teacher_anymal_c.yaml --run-dir $(TEACHER_C) \
		$(call resume_now,$(TEACHER_C))

# Re-pin: for each release, a scratch venv takes the newest packages that requirements.txt
# and the release's rclpy allow, and its `pip freeze` becomes constraints/<release>.txt
# (torch's local "+cpu" label dropped, so the pin matches torch==2.13.0 from any index).
# Then `make clean test`, and commit the constraints files with what they changed.
LOCK_VENV := build/lock-venv
lock:
	$(foreach release,$(RELEASES),$(call lock_release,$(release)))

define lock_release
	rm -rf $(LOCK_VENV) && python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -r requirements.txt \
		$(addprefix -r ,$(wildcard requirements-$(1).txt)) "ros-rclpy~=$(rclpy_$(1)).0"
	{ echo "# ROS 2 $(1): the versions \`make test\` passed with. Written by \`make lock\`."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable \
	  | sed -E 's/^([^=]+==[^+]+)\+.*/\1/'; } > constraints/$(1).txt
	rm -rf $(LOCK_VENV)

endef

clean:
	rm -rf $(foreach release,$(RELEASES),$(venv_$(release))) build install log
