"""Evaluation: segmentation metrics, rosbag2 replay and reports."""
