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

import pytest  # noqa: E402


@pytest.fixture
def ros():
    """A private rclpy context + executor (``ros_helpers.RosSession``), closed afterwards."""
    from ros_helpers import RosSession

    session = RosSession()
    yield session
    session.close()


@pytest.fixture(scope="module")
def student_path(tmp_path_factory):
    """A freshly initialised joint-residual student (near-zero residuals), exported to ONNX."""
    from anymal_ros.config.models import StudentConfig, sized_for_action_mode
    from anymal_ros.deploy.export import export_student
    from anymal_ros.models.student import Student

    torch.manual_seed(0)
    student = Student(sized_for_action_mode(StudentConfig(), "joint_residual")).eval()
    return export_student(student, tmp_path_factory.mktemp("policy") / "student.onnx")
