"""ament_python package definition for anymal_ros.

`pip install -e .` and `colcon build` both use this file. ROS 2 client libraries are not listed
in install_requires: a robot gets them from its ROS distribution, the Makefile from PyPI.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "anymal_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["robots/*.xml", "robots/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        # The shipped policy, its card and figures; not policies/training/ (resumable runs).
        (f"share/{PACKAGE}/policies", [p for p in glob("policies/*") if Path(p).is_file()]),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy",
        "pyyaml",
        "einops",
        "onnx",
        "onnxruntime",
        "torch",
        "mujoco",
        "tqdm",
    ],
    extras_require={"test": ["pytest", "ruff"]},
    zip_safe=True,
    maintainer="anymal_ros maintainers",
    maintainer_email="maintainers@anymal-ros.invalid",
    description="Teacher-student perceptive locomotion: MuJoCo training, ONNX export, ROS 2 nodes.",
    license="BSD-3-Clause",
    entry_points={
        "console_scripts": [
            "anymal-ros = anymal_ros.cli:main",
            "policy_node = anymal_ros.nodes.policy_node:main",
            "sim_node = anymal_ros.nodes.sim_node:main",
            "train_node = anymal_ros.nodes.train_node:main",
        ],
    },
)
