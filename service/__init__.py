"""The optistudy service and its command line."""
