from glob import glob

from setuptools import find_packages, setup

PACKAGE = "lcsnet_seg"

EXECUTABLES = {
    "segmentation_node": "lcsnet_seg.ros.segmentation_node:main",
    "convert": "lcsnet_seg.tools.convert:main",
    "demo": "lcsnet_seg.tools.demo:main",
    "evaluate": "lcsnet_seg.tools.evaluate:main",
    "make_demo_bag": "lcsnet_seg.tools.make_demo_bag:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    package_data={PACKAGE: ["model/weights/*.pth", "model/weights/*.onnx"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
    ],
    # ROS convention: runtime dependencies come from package.xml (rosdep) or requirements.txt (pip).
    install_requires=["setuptools"],
    # colcon test runs pytest only when the package declares it (else it falls back to unittest and finds nothing).
    # gpu: JPEG frames decoded on the GPU (nvImageCodec, CUDA 13 on x86; on a Jetson install
    # nvidia-nvimgcodec-tegra-cu12 or -tegra-cu13 instead), imported lazily: nothing changes without it.
    extras_require={
        "test": ["pytest", "hypothesis", "psutil"],
        "gpu": ["cuda-python", "nvidia-nvimgcodec-cu13", "nvidia-nvjpeg"],
    },
    zip_safe=False,
    maintainer="lcsnet_seg maintainers",
    maintainer_email="maintainers@lcsnet-seg.invalid",
    description="Real-time indoor semantic segmentation (LCSNet) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={"console_scripts": [f"{name} = {target}" for name, target in EXECUTABLES.items()]},
)
