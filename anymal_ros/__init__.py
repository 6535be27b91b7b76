"""anymal_ros: teacher-student perceptive locomotion from MuJoCo to a ROS 2 robot."""

__version__ = "0.1.0"
