"""Support code for tests, the demo and benchmarks (as ``torch.testing``): data made on the spot.

Nothing here is needed to use the zoo; everything here writes benign files in
the zoos' real formats and layouts, so the real code paths can run without
the real (licensed, partly withdrawn) datasets or the zoo's hosts:

* :mod:`~modelzoo.testing.synthetic` -- small datasets in the exact on-disk
  layouts of Market-1501, DukeMTMC-reID and MSMT17, with identity-dependent images;
* :mod:`~modelzoo.testing.weights` -- deterministic, non-trivial weights for any model;
* :mod:`~modelzoo.testing.checkpoints` -- checkpoint files of every vintage the
  zoos used (torchreid dicts, bare and ``module.`` state dicts, pre-1.6 and
  Python-2 pickles, QMUL zips), named as the manifest names them;
* :mod:`~modelzoo.testing.server` -- a real HTTP server on 127.0.0.1 with
  injectable faults (errors, cut connections, stalls, HTML pages), and
  :func:`~modelzoo.testing.server.serve_folder` to serve a mirror folder.

Import the submodules explicitly (``from modelzoo.testing import synthetic``);
they import torch, NumPy and Pillow.
"""
