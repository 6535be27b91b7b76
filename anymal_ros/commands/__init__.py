"""Sub-commands of `anymal-ros`. Each module offers `add_arguments(parser)` and `run(args)`,
and keeps heavy imports (torch, mujoco, rclpy) inside `run` so `--help` stays instant."""
