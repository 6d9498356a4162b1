# Copyright 2026 The denseflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The synthetic georeferenced world used by the demo, the tests and CPU training."""
