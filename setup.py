# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Build script for the denseflow_ros ament_python package."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "denseflow_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["resources/*.xml", "resources/*.pt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy",
        "opencv-python-headless",
        "pyproj",
        "pyyaml",
        "rosbags>=0.10",
        "setuptools",
        "torch>=2.10",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        # The PyPI ROS 2 wheels, for machines without a ROS distribution.
        "ros": [
            "ros-rclpy[fastrtps]",
            "ros-sensor-msgs",
            "ros-geometry-msgs",
            "ros-std-msgs",
            "ros-nav-msgs",
            "ros-diagnostic-msgs",
        ],
        "test": [
            "pytest",
            "pytest-timeout",
            "ruff",
            "mcap",
            "mcap-ros2-support",
            "mercantile",
            "morecantile",
            "rasterio",
            "colcon-core",
            "colcon-ros",
            "colcon-python-setup-py",
        ],
        "geotiff": ["rasterio"],
    },
    zip_safe=True,
    maintainer="denseflow_ros maintainers",
    maintainer_email="maintainers@denseflow-ros.dev",
    description="DenseFlow cross-view localization of ground vehicles against satellite imagery.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "denseflow = denseflow_ros.cli:main",
            "localizer_node = denseflow_ros.ros.node:main",
        ],
    },
)
