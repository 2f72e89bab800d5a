# placeholder until the demo page's npm dependencies land
.PHONY: demo-deps
demo-deps:
	@true
