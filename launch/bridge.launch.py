"""Start the rover_ws_bridge node on a rover.

    ros2 launch rover_ws_bridge bridge.launch.py
    ros2 launch rover_ws_bridge bridge.launch.py port:=9000 address:=127.0.0.1 log_level:=debug
    ros2 launch rover_ws_bridge bridge.launch.py params_file:=/etc/rover/bridge.yaml

Every parameter comes from `params_file` (default: the package's config/bridge.yaml, which
documents them all). `port` and `address` override the file only when given: an empty value
(the default) leaves the file's value in place, so editing the port in your params file is not
silently undone by a launch default.

Without a ROS install (no `launch`/`launch_ros`), start the same node with the console script:
    rover-ws-bridge --ros-args --params-file config/bridge.yaml -p port:=9000
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'rover_ws_bridge'
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')


def _bridge_node(context, *args, **kwargs):
    # Resolved at launch time so that an override is added only when the user gave one.
    overrides = {}
    port = LaunchConfiguration('port').perform(context).strip()
    if port and not (port.isdigit() and int(port) <= 65535):
        # launch would only say "invalid literal for int()": name the argument instead.
        # (launch prints an exception raised here as one line and starts nothing.)
        raise ValueError(f"launch argument 'port' = '{port}' is not allowed: expected an "
                         "integer 0..65535 (0 = chosen by the OS), or empty for the value "
                         "in params_file")
    if port:
        # A launch argument is a string; the node declares `port` as an integer parameter.
        overrides['port'] = ParameterValue(LaunchConfiguration('port'), value_type=int)
    if LaunchConfiguration('address').perform(context).strip():
        overrides['address'] = ParameterValue(LaunchConfiguration('address'), value_type=str)
    parameters = [LaunchConfiguration('params_file')]
    if overrides:
        parameters.append(overrides)
    return [
        Node(
            package=PACKAGE,
            executable='bridge',
            name='rover_ws_bridge',
            parameters=parameters,
            # launch_ros leaves out a params file that does not exist (with a warning) and the
            # node would start on its defaults: the node refuses to start without it.
            arguments=['--require-params-file', LaunchConfiguration('params_file')],
            ros_arguments=['--log-level', LaunchConfiguration('log_level')],
            output='screen',
            emulate_tty=True,  # line-buffered output, so log lines show as they happen
        )
    ]


def generate_launch_description():
    default_params_file = os.path.join(
        get_package_share_directory(PACKAGE), 'config', 'bridge.yaml')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=default_params_file,
            description='ROS 2 parameters file of the bridge (see config/bridge.yaml).'),
        DeclareLaunchArgument(
            'port', default_value='',
            description='TCP port of the WebSocket/HTTP server (0 = chosen by the OS). '
                        'Empty: the value in params_file.'),
        DeclareLaunchArgument(
            'address', default_value='',
            description='Interface the server listens on (e.g. 0.0.0.0, 127.0.0.1). '
                        'Empty: the value in params_file.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=list(LOG_LEVELS),
            description='Log level of the bridge node.'),
        OpaqueFunction(function=_bridge_node),
    ])
