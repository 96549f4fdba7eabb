"""patchline: PatchCore defect detection for production-line cameras."""

import os

__version__ = "0.1.0"

# MindSpore 2.10's bundled oneDNN picks AVX-512 kernels for dense 3×3 convolutions that run
# 10–100× slower than its AVX2 ones on AVX-512 CPUs (measured here on an AMD EPYC: one 256→256
# 3×3 conv at 28×28 took 1.6 s, 0.03 s capped at AVX2; wide_resnet50_2 at 224 px went from 32 s
# to 0.3 s per image). Set before MindSpore loads; a user's own setting wins.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
os.environ.setdefault("DNNL_MAX_CPU_ISA", "AVX2")
