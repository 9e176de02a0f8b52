"""Imports every family module so that its builders register themselves."""

# One import per family module; keep this list sorted.
from modelzoo.architectures import densenet  # noqa: F401
from modelzoo.architectures import fastreid  # noqa: F401
from modelzoo.architectures import hacnn  # noqa: F401
from modelzoo.architectures import mlfn  # noqa: F401
from modelzoo.architectures import mobilenetv2  # noqa: F401
from modelzoo.architectures import osnet  # noqa: F401
from modelzoo.architectures import osnet_ain  # noqa: F401
from modelzoo.architectures import resnet  # noqa: F401
from modelzoo.architectures import resnetmid  # noqa: F401
from modelzoo.architectures import senet  # noqa: F401
from modelzoo.architectures import shufflenet  # noqa: F401
from modelzoo.architectures import squeezenet  # noqa: F401
