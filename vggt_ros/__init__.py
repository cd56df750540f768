"""VGGT for ROS 2: the ROS-agnostic core (model, export, runtime, geometry, windowing, mapping) and a thin node."""
