"""The application around the ML library: the CLI, local services, deployments and the results site.

Nothing in the library (``pipeline`` outside this package) imports from here.
"""
