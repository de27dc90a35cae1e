"""The training path and what only it uses: ``loop`` (``fit`` and ``train``, the one gradient
loop and the EM path, reading top-down), ``parts`` (the loop's budget, position, phase step and
signals), ``log`` (the meter and metrics.jsonl), ``prepare`` (what is checked and built before
a run folder is touched), ``validation`` (--validation's score, best weights and patience),
``checkpoint`` (the resume checkpoint, and putting a run back in its state) and ``frames`` (the
frames of training that ``explore`` replays).

Nothing is imported here, so that the run folder's module can use ``frames`` without
importing the loop (which imports it).

Imports nothing of this package: any module may import it.
"""
