"""Lambda entry points: thin, they parse, call directupload, and shape the reply."""
