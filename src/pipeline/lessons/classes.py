"""The classes of the path's datasets by name, for figures, texts and tables: a reader sees
"virginica" or "survived", never the code 2 or 1. Each tuple is indexed by the code."""

IRIS_SPECIES = ("setosa", "versicolor", "virginica")  # the Iris target 0, 1, 2 (sklearn's target_names)
TITANIC_OUTCOMES = ("died", "survived")  # Titanic's Survived 0, 1
MNIST_DIGITS = tuple(str(digit) for digit in range(10))
