"""Recordings in and out: rosbag2 (mcap, sqlite3) read and written with rosbags, no ROS install needed."""
