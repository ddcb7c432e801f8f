"""The engine: draws, autograd truth, comparison, the degeneracy guard, diagnosis and the
witnesses. The only package of matgrad that imports torch."""
