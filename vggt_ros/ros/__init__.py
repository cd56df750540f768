"""The ROS 2 layer: the `vggt` node, its parameters and message builders (the only rclpy code in the package)."""
