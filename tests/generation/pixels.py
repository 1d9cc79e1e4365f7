"""How far two renderings of one image may differ after a change that only reorders float sums.

Batching, padding, chunking, fused QKV, channels-last and compiled kernels change the order in
which float32 sums are taken, on top of the kernels each CPU capability (AVX2, AVX-512) picks.
Through two denoising steps and guidance 7.5 that leaves the decoded pixels within about 1e-5
of each other on the 0..1 scale, 400 times less than one uint8 level (1/255). Two values less
than one level apart round to levels at most 1 apart, so 1 is the tolerance; a real change
(another seed, another scheduler, a LoRA) moves pixels by tens of levels.
"""

PIXEL_TOLERANCE = 1
