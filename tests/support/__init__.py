"""What several test layers share: sample files, signing in, driving the processor, the
template's settings, and waiting for an outcome."""
