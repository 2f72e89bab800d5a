# Processing: the dead-letter queue's way back.
#   make redrive                      the local stack (reads .local/stack.json)
#   make redrive STACK=directupload-dev   a deployed stack (STACK given here, or in the environment;
#                                     infra.mk's default names the stack to deploy, not this one) (its IngestQueueUrl / DeadLetterQueueUrl outputs)
#   make redrive QUEUE=<url> DLQ=<url>    any two queues
.PHONY: redrive
redrive: setup ## move dead-lettered notifications back to the ingest queue (STACK=name or QUEUE=url DLQ=url for AWS)
	@$(BIN)/python -m scripts.redrive $(if $(filter command line environment,$(origin STACK)),--stack $(STACK)) $(if $(QUEUE),--queue $(QUEUE)) $(if $(DLQ),--dlq $(DLQ)) $(if $(LIMIT),--limit $(LIMIT))

# Send again the events of upload records changed since a moment (after an EventBridge outage
# longer than the stream keeps changes: PublishDeadLetterQueue has messages).
#   make republish SINCE=2026-12-01T10:00:00Z                         the local stack
#   make republish SINCE=2026-12-01T10:00:00Z STACK=directupload-dev  a deployed stack
.PHONY: republish
republish: setup ## send again the events of upload records changed since SINCE=<ISO time> (STACK=name for AWS)
	@test -n "$(SINCE)" || { echo "give SINCE=<ISO time with zone>, e.g. make republish SINCE=2026-12-01T10:00:00Z"; exit 2; }
	@$(BIN)/python -m scripts.republish --since "$(SINCE)" $(if $(UNTIL),--until "$(UNTIL)") $(if $(filter command line environment,$(origin STACK)),--stack $(STACK))
