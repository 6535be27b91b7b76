"""ROS message code of the deployment layer: readers (with validation) and writers of the
messages the nodes and the ROS bridge exchange. Imported by ``nodes/`` and ``bridges/``;
imports nothing above the deployment layer."""
