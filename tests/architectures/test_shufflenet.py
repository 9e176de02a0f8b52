"""ShuffleNet's channel shuffle, beyond the shared contract of test_builders.py and test_parity.py."""

from __future__ import annotations

import torch


def test_channel_shuffle_interleaves_groups_like_torch():
    from modelzoo.architectures.shufflenet import ChannelShuffle

    images = torch.arange(2 * 12 * 2 * 3, dtype=torch.float32).reshape(2, 12, 2, 3)
    shuffled = ChannelShuffle(3)(images)
    torch.testing.assert_close(shuffled, torch.nn.ChannelShuffle(3)(images), rtol=0, atol=0)
    # channel j*3 + i of the output is channel i*4 + j of the input
    assert torch.equal(shuffled[:, 1], images[:, 4])
