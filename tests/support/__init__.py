"""What several test layers share: sample files, signing in, and driving the processor."""
