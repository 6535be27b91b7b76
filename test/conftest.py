"""Test-wide settings: single-threaded maths and DDS that never leaves loopback."""

import os
import random

# Set before anything imports rclpy: discovery stays on this machine, and a random domain id
# keeps parallel test runs from seeing each other's topics.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(10, 200)))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402

torch.set_num_threads(1)
