"""Built-in MuJoCo quadruped simulator bridge (layer 3).

MuJoCo picks its OpenGL backend when first imported, so the headless default (EGL) is chosen
here, before any submodule imports it; set ``MUJOCO_GL`` yourself to override (e.g. osmesa).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
