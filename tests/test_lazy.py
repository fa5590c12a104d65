"""pgrun.lazy: modules executed at first use, whole."""

import subprocess
import sys


def test_a_lazy_submodule_of_a_lazy_package_leaves_the_package_whole():
    """torch made lazy (the algorithm modules), then torch.utils.tensorboard (the logger): torch
    must come out as a plain import of it would, torch.utils.backend_registration included,
    which torch.norm reads (a TRPO run died there when the imports came in this order)."""
    code = (
        "from pgrun.lazy import lazy_import\n"
        "lazy_import('torch')\n"
        "board = lazy_import('torch.utils.tensorboard')\n"
        "import torch\n"
        "assert hasattr(torch.utils, 'backend_registration')\n"
        "print(float(torch.ones(4).norm()), board.SummaryWriter.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2.0", "SummaryWriter"]
