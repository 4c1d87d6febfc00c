"""Algorithms of your own, written as plugins: the README's "Write your own algorithm".

Nothing here is registered: a plugin is named where it is used, by its file or its module
(``neg train --algo agents/examples/mode_bc.py:ModeBC``, or
``agents.examples.mode_bc:ModeBC``, which works in any installation and inside a
board's sandbox), and the registry loads it then (:mod:`agents.registry`).

- :mod:`~agents.examples.mode_bc`: behaviour cloning on the noisy expert's mode (the token its row
  ranks first at each prefix of its rollouts, not the token it wrote): one class over the shipped
  trainer, losses and student.
"""
