"""keras-vis 0.5 compatibility: the classic filter tutorial runs with ``from vis.`` replaced by
``from filter_atlas.keras_vis.``.

What it does: ``visualize_activation`` is ``filter_atlas.render`` with the keras-vis recipe
(pixel space, Lp and TV penalties, normalized RMSProp, best iterate, standardized result), the
given weights and ``input_modifiers``. Like keras-vis, it feeds the model the image in
``input_range`` units (0-255 by default) *without* the model's own preprocessing: a
``keras.applications.VGG16`` then sees un-centred RGB, exactly as in the original tutorial. For
ImageNet preprocessing and the Lucid recipe, use ``filter_atlas.render``.
"""
