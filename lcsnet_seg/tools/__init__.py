"""Command-line front ends (thin argparse wrappers), registered as console scripts and ros2 run executables."""
