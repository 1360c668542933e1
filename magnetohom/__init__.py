"""magnetohom: machine-learning-aided multiscale magnetostatics.

The work is done by three packages with one data flow:

* :mod:`micro` -- periodic two-phase microstructures (SVEs), DOLFINx homogenization labels,
  analytic estimates and HDF5 datasets;
* :mod:`surrogate` -- CNN surrogates (Keras/TensorFlow) of the homogenized permeability;
* :mod:`macro` -- FE²-style macroscale magnetostatics with a constitutive provider per
  quadrature point.

This package holds what all three share (errors) and the ``magnetohom`` command line.
Importing it imports nothing heavy.
"""

from magnetohom.errors import InputError, MagnetohomError, SolverError

__all__ = ["InputError", "MagnetohomError", "SolverError", "__version__"]
__version__ = "0.1.0"
