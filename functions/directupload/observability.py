"""Logger, Tracer and Metrics: one place, one namespace, shared by every layer."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "directupload"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="DirectUpload", service=SERVICE)
