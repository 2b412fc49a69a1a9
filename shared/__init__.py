"""pixelpipe: serverless image processing on Azure Functions."""

__version__ = "0.1.0"
