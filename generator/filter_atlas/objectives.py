"""Objectives for ``filter_atlas.render``: ``channel``, ``neuron``, ``diversity``, ``lp_norm``,
``total_variation``; compose them with ``+``, ``-`` and scalar ``*``.

    from filter_atlas import objectives as obj
    obj.channel("block4_conv1", 9) - 1e2 * obj.diversity("block4_conv1")
"""

from .engine.objectives import Objective, channel, diversity, lp_norm, neuron, total_variation

__all__ = ["Objective", "channel", "diversity", "lp_norm", "neuron", "total_variation"]
