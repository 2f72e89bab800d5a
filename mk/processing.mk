# Processing: the dead-letter queue's way back.
#   make redrive                      the local stack (reads .local/stack.json)
#   make redrive STACK=directupload-dev   a deployed stack (STACK given here, or in the environment;
#                                     infra.mk's default names the stack to deploy, not this one) (its IngestQueueUrl / DeadLetterQueueUrl outputs)
#   make redrive QUEUE=<url> DLQ=<url>    any two queues
.PHONY: redrive
redrive: setup ## move dead-lettered notifications back to the ingest queue (STACK=name or QUEUE=url DLQ=url for AWS)
	@$(BIN)/python -m scripts.redrive $(if $(filter command line environment,$(origin STACK)),--stack $(STACK)) $(if $(QUEUE),--queue $(QUEUE)) $(if $(DLQ),--dlq $(DLQ)) $(if $(LIMIT),--limit $(LIMIT))
