"""Scenario simulation: ground-truth targets, simulated sensors and the files they produce.

``truth`` moves the targets, ``sensors`` turns truth into detections scan by scan, ``run``
ties them together (:func:`borderwatch.simulator.run.simulate`,
:func:`borderwatch.simulator.run.simulate_to_dir`). Submodules are imported on use, so a
command that needs none of them pays nothing.
"""
