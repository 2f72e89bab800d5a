"""Processing: verify an uploaded object, run its profile's steps, record the outcome."""
