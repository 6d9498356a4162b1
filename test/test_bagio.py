# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""rosbag2 writing and reading: rosbags round trips, the mcap reader, metadata and errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from denseflow_ros import bagio

STAMP = 1_317_000_000_123_456_789


def _write_sample(path: Path, storage: str) -> np.ndarray:
    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    k = np.array([[700.0, 0.0, 3.5], [0.0, 710.0, 2.5], [0.0, 0.0, 1.0]])
    with bagio.BagWriter(path, storage, metadata={"source": "unit"}) as bag:
        bag.write("/cam/image", "sensor_msgs/msg/Image", STAMP, bagio.image_msg(rgb, STAMP, "cam"))
        bag.write(
            "/cam/info", "sensor_msgs/CameraInfo", STAMP,
            bagio.camera_info_msg(k, 7, 5, STAMP, "cam"),
        )
        bag.write(
            "/fix", "sensor_msgs/msg/NavSatFix", STAMP + 10,
            bagio.navsatfix_msg(49.01, 8.43, 112.5, STAMP + 10, covariance=[0.25, 0.36, 1.0]),
        )
        bag.write(
            "/imu", "sensor_msgs/msg/Imu", STAMP + 20,
            bagio.imu_msg(STAMP + 20, "imu", bagio.quaternion_from_euler(0.0, 0.0, 0.5),
                          (0.1, 0.2, 0.3), (1.0, 2.0, 9.8)),
        )
        bag.write(
            "/gt", "geometry_msgs/msg/PoseStamped", STAMP + 30,
            bagio.pose_stamped_msg(STAMP + 30, "enu", (1.5, -2.5, 0.25)),
        )
    return rgb


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_with_rosbags(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / "bag"
    rgb = _write_sample(bag, storage)
    assert bagio.bag_topics(bag)["/fix"] == ("sensor_msgs/msg/NavSatFix", 1)
    msgs = list(bagio.iter_messages(bag))
    assert [m.stamp_ns for m in msgs] == sorted(m.stamp_ns for m in msgs)
    by_topic = {m.topic: m for m in msgs}
    image = by_topic["/cam/image"].msg
    assert bagio.stamp_to_ns(image.header.stamp) == STAMP
    assert image.header.frame_id == "cam" and image.encoding == "rgb8"
    np.testing.assert_array_equal(bagio.image_array(image), rgb)
    info = by_topic["/cam/info"].msg
    assert info.k[0] == 700.0 and info.p[5] == 710.0 and info.p[3] == 0.0
    fix = by_topic["/fix"].msg
    assert (fix.latitude, fix.longitude, fix.altitude) == (49.01, 8.43, 112.5)
    assert fix.position_covariance_type == bagio.COVARIANCE_TYPE_DIAGONAL_KNOWN
    assert list(fix.position_covariance[[0, 4, 8]]) == [0.25, 0.36, 1.0]
    imu = by_topic["/imu"].msg
    assert math.isclose(bagio.yaw_from_quaternion(
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w), 0.5)
    assert imu.linear_acceleration.z == 9.8
    assert by_topic["/gt"].msg.pose.position.y == -2.5
    only = list(bagio.iter_messages(bag, topics=["/gt", "/nothing"]))
    assert [m.topic for m in only] == ["/gt"]
    assert list(bagio.iter_messages(bag, topics=["/nothing"])) == []
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == storage
    assert meta["version"] == bagio.BAG_VERSION
    assert meta["custom_data"] == {"source": "unit"}
    assert meta["starting_time"]["nanoseconds_since_epoch"] == STAMP
    # Humble's rosbag2 reads the QoS profiles only as a YAML string.
    for entry in meta["topics_with_message_count"]:
        assert isinstance(entry["topic_metadata"]["offered_qos_profiles"], str)


def test_mcap_reader_decodes_rosbags_output(tmp_path: Path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    bag = tmp_path / "bag"
    rgb = _write_sample(bag, "mcap")
    (mcap_file,) = bag.glob("*.mcap")
    decoded = {}
    with mcap_file.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        for schema, channel, message, msg in reader.iter_decoded_messages():
            assert schema.encoding == "ros2msg"
            assert message.log_time == bagio.stamp_to_ns(msg.header.stamp)
            decoded[channel.topic] = msg
    assert set(decoded) == {"/cam/image", "/cam/info", "/fix", "/imu", "/gt"}
    image = decoded["/cam/image"]
    assert (image.height, image.width, image.step) == (5, 7, 21)
    assert bytes(image.data) == rgb.tobytes()
    assert decoded["/fix"].latitude == 49.01
    assert decoded["/fix"].status.service == bagio.NAVSAT_SERVICE_GPS
    assert decoded["/gt"].header.frame_id == "enu"
    assert decoded["/imu"].angular_velocity.y == 0.2


def test_failed_block_leaves_no_bag_and_existing_bag_is_kept(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    with pytest.raises(RuntimeError), bagio.BagWriter(bag) as writer:
        writer.write("/gt", "geometry_msgs/msg/PoseStamped", 1,
                     bagio.pose_stamped_msg(1, "enu", (0, 0, 0)))
        raise RuntimeError("conversion failed")
    assert not bag.exists()
    _write_sample(bag, "mcap")
    with pytest.raises(bagio.BagError, match="exists"):
        bagio.BagWriter(bag).open()
    with bagio.BagWriter(bag, overwrite=True) as writer:
        writer.write("/gt", "geometry_msgs/msg/PoseStamped", 5,
                     bagio.pose_stamped_msg(5, "enu", (0, 0, 0)))
    assert bagio.bag_topics(bag) == {"/gt": ("geometry_msgs/msg/PoseStamped", 1)}


def test_writer_rejects_mismatched_types(tmp_path: Path) -> None:
    with bagio.BagWriter(tmp_path / "bag") as writer:
        pose = bagio.pose_stamped_msg(1, "enu", (0, 0, 0))
        with pytest.raises(bagio.BagError, match="written as"):
            writer.write("/gt", "sensor_msgs/msg/Imu", 1, pose)
        writer.write("/gt", "geometry_msgs/msg/PoseStamped", 1, pose)
        with pytest.raises(bagio.BagError, match="already carries"):
            writer.write("/gt", "sensor_msgs/msg/Imu", 2, bagio.imu_msg(2))
        with pytest.raises(bagio.BagError, match="absolute"):
            writer.write("gt", "geometry_msgs/msg/PoseStamped", 1, pose)


def test_builders_follow_message_conventions() -> None:
    imu = bagio.imu_msg(7)
    assert imu.orientation_covariance[0] == -1.0  # no orientation estimate
    fix = bagio.navsatfix_msg(1.0, 2.0, 3.0, 7)
    assert fix.position_covariance_type == bagio.COVARIANCE_TYPE_UNKNOWN
    full = bagio.navsatfix_msg(1.0, 2.0, 3.0, 7, covariance=np.eye(3) * 4.0)
    assert full.position_covariance_type == bagio.COVARIANCE_TYPE_KNOWN
    cov = bagio.pose_with_covariance_stamped_msg(7, "map", (1, 2, 0), covariance=range(1, 7))
    assert list(cov.pose.covariance[::7]) == [1, 2, 3, 4, 5, 6]
    assert bagio.time_msg(3_000_000_007).sec == 3 and bagio.time_msg(3_000_000_007).nanosec == 7
    roll, pitch, yaw = bagio.euler_from_quaternion(*bagio.quaternion_from_euler(0.1, -0.2, 2.5))
    assert np.allclose([roll, pitch, yaw], [0.1, -0.2, 2.5])
    bgr = bagio.image_msg(np.zeros((2, 2, 3), np.uint8), 1)
    bgr.encoding = "bgr8"
    bgr.data = np.array([1, 2, 3] * 4, dtype=np.uint8)
    assert bagio.image_array(bgr)[0, 0].tolist() == [3, 2, 1]
    with pytest.raises(bagio.BagError, match="uint8"):
        bagio.image_msg(np.zeros((2, 2, 3), np.float32), 1)
    with pytest.raises(bagio.BagError, match="pkg/msg/Type"):
        bagio.normalize_msg_type("Image")
