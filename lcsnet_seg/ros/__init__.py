"""ROS 2 glue: the lifecycle node, parameters and message <-> array conversion. The only code importing rclpy."""
