"""``python -m aiide_kernel.launch``: the kernel-gateway launcher (the kernelspec's argv)."""

from .launcher import main

main()
